"""Assets without dimensions: an export's zip bundle has no width or height, so both are null.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("assets") as batch:
        batch.alter_column("width", existing_type=sa.Integer(), nullable=True)
        batch.alter_column("height", existing_type=sa.Integer(), nullable=True)
    op.execute("UPDATE assets SET width = NULL, height = NULL WHERE format = 'zip'")


def downgrade() -> None:
    op.execute("UPDATE assets SET width = 0, height = 0 WHERE width IS NULL OR height IS NULL")
    with op.batch_alter_table("assets") as batch:
        batch.alter_column("width", existing_type=sa.Integer(), nullable=False)
        batch.alter_column("height", existing_type=sa.Integer(), nullable=False)
