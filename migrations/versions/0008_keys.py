"""API keys an operator manages: a rotated key's end of grace, when a key was last used, and an
index to list a tenant's keys. Keys minted before keep their hash and prefix and go on working.
Tenants get a monthly budget.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index("ix_api_keys_tenant_id_id", "api_keys", ["tenant_id", "id"])
    with op.batch_alter_table("tenants") as batch:
        batch.add_column(sa.Column("monthly_budget_usd", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("tenants") as batch:
        batch.drop_column("monthly_budget_usd")
    op.drop_index("ix_api_keys_tenant_id_id", table_name="api_keys")
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("last_used_at")
        batch.drop_column("expires_at")
