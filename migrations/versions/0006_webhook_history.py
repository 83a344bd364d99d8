"""Keep webhook delivery history: each attempt's URL, and endpoints deleted by a mark
(`deleted_at`) rather than by removing them with their deliveries.

Attempts already made keep a null URL unless they were to a request's own `webhook_url`, which
never changes; a registered endpoint may have moved since, so its older attempts are not guessed.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Timestamp = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.add_column("webhook_attempts", sa.Column("url", sa.String(2048), nullable=True))
    op.execute(
        "UPDATE webhook_attempts SET url = ("
        " SELECT url FROM webhook_deliveries"
        " WHERE webhook_deliveries.id = webhook_attempts.delivery_id"
        " AND webhook_deliveries.endpoint_id IS NULL)"
    )
    op.add_column("webhook_endpoints", sa.Column("deleted_at", Timestamp, nullable=True))


def downgrade() -> None:
    # Without the mark a deleted endpoint would receive events again; it stays disabled instead,
    # keeping its deliveries.
    op.execute(
        "UPDATE webhook_endpoints SET disabled_at = COALESCE(disabled_at, deleted_at)"
        " WHERE deleted_at IS NOT NULL"
    )
    op.drop_column("webhook_endpoints", "deleted_at")
    op.drop_column("webhook_attempts", "url")
