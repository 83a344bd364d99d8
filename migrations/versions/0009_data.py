"""Data lifecycle: deleted assets keep a tombstone row (`deleted_at`) for lineage, and a tenant
may override the deployment's retention (`retention_days`).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("assets", sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("tenants", sa.Column("retention_days", sa.Integer(), nullable=True))


def downgrade() -> None:
    # Tombstones have no bytes; without the column they would read as live assets.
    op.execute("DELETE FROM assets WHERE deleted_at IS NOT NULL")
    with op.batch_alter_table("tenants") as batch:
        batch.drop_column("retention_days")
    with op.batch_alter_table("assets") as batch:
        batch.drop_column("deleted_at")
