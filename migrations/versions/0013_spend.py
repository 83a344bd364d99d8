"""A spend ledger per tenant, day and model (in shards, so that a busy tenant's writes do not
queue on one row's lock) that outlives deleted jobs, filled from the jobs there are; a job's
cost is the known cost of its stored outputs, and an index finds a tenant's queued and running
jobs.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-04
"""

from collections import defaultdict
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSONDocument = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
IN_FLIGHT = sa.text("status IN ('queued', 'running')")
# The UTC day a job was submitted: SQLite keeps timestamps as UTC text.
SUBMISSION_DAY = {
    "postgresql": "(jobs.created_at AT TIME ZONE 'UTC')::date",
    "sqlite": "date(jobs.created_at)",
}


def upgrade() -> None:
    op.create_table(
        "spend",
        sa.Column(
            "tenant_id",
            sa.String(40),
            sa.ForeignKey("tenants.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("day", sa.Date(), primary_key=True),
        sa.Column("model", sa.String(200), primary_key=True),
        sa.Column("shard", sa.SmallInteger(), primary_key=True),
        sa.Column("jobs", sa.Integer(), nullable=False),
        sa.Column("images", sa.Integer(), nullable=False),
        sa.Column("cost_usd", sa.Float(), nullable=False),
    )
    op.create_index(
        "ix_jobs_tenant_id_in_flight",
        "jobs",
        ["tenant_id"],
        postgresql_where=IN_FLIGHT,
        sqlite_where=IN_FLIGHT,
    )
    _cost_jobs_by_their_outputs()
    _fill_ledger()


def _cost_jobs_by_their_outputs() -> None:
    """Give each job without a cost the known cost of its stored outputs: one canceled or
    failed part way, or one with an output of unknown price, had none recorded."""
    connection = op.get_bind()
    assets = sa.table("assets", sa.column("job_id"), sa.column("details", JSONDocument))
    jobs = sa.table("jobs", sa.column("id"), sa.column("cost_usd"))
    outputs = connection.execute(
        sa.select(assets.c.job_id, assets.c.details)
        .join(jobs, jobs.c.id == assets.c.job_id)
        .where(jobs.c.cost_usd.is_(None))
    )
    costs: dict[str, float] = defaultdict(float)
    for job_id, details in outputs:
        cost = (details or {}).get("cost_usd")
        if cost is not None:
            costs[job_id] += float(cost)
    if costs:
        connection.execute(
            jobs.update().where(jobs.c.id == sa.bindparam("job_id")),
            [{"job_id": job_id, "cost_usd": cost} for job_id, cost in costs.items()],
        )


def _fill_ledger() -> None:
    """Count every job there is on the day it was submitted, under its model, in shard 0: the
    readers sum a day and model's shards, so the jobs' later writes may land in others."""
    day = SUBMISSION_DAY[op.get_bind().dialect.name]
    op.execute(
        "INSERT INTO spend (tenant_id, day, model, shard, jobs, images, cost_usd) "
        f"SELECT jobs.tenant_id, {day}, jobs.model, 0, count(*), "
        "coalesce(sum(outputs.images), 0), coalesce(sum(jobs.cost_usd), 0) "
        "FROM jobs LEFT JOIN (SELECT job_id, count(*) AS images FROM assets "
        "WHERE job_id IS NOT NULL GROUP BY job_id) AS outputs ON outputs.job_id = jobs.id "
        f"GROUP BY jobs.tenant_id, {day}, jobs.model"
    )


def downgrade() -> None:
    op.drop_index("ix_jobs_tenant_id_in_flight", table_name="jobs")
    op.drop_table("spend")
