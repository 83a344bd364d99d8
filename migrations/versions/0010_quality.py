"""Jobs record the cost expected at submission beside the cost they had.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("estimated_cost_min_usd", sa.Float(), nullable=True))
        batch.add_column(sa.Column("estimated_cost_max_usd", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("estimated_cost_max_usd")
        batch.drop_column("estimated_cost_min_usd")
