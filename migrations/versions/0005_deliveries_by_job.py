"""Index webhook deliveries by job, for GET /v1/jobs/{id}/webhook-deliveries.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_webhook_deliveries_job_id_id", "webhook_deliveries", ["job_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_webhook_deliveries_job_id_id", table_name="webhook_deliveries")
