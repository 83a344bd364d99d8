"""Spend: a ledger of what each tenant's jobs cost per UTC day and model (in a few shards, each
job's in one), written as jobs are submitted and outputs stored (so deleting a job takes nothing
back); the month's spend read from it, the budget an operator may set, and the check that
refuses a job whose estimated cost would take the spend past it."""

import zlib
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import ColumnElement, Date, and_, bindparam, case, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import database_now
from app.errors import BudgetExceeded, NotFound
from app.ids import first_id_at
from app.models import Job, Spend, Tenant
from app.schemas.budgets import DailyUsage, TenantBudget, Usage
from app.schemas.catalog import PriceRange

# Sums of float prices are rounded to a millionth of a dollar, so 0.1 + 0.2 fits a 0.3 budget.
DIGITS = 6
# Ledger rows per tenant, day and model: a write locks its row until it commits, so with one
# row a busy tenant's submissions and stored outputs would be written one at a time.
SPEND_SHARDS = 16


def month_start(now: datetime) -> datetime:
    """The first instant of `now`'s calendar month, in UTC."""
    now = now.astimezone(UTC)
    return datetime(now.year, now.month, 1, tzinfo=UTC)


def next_month_start(now: datetime) -> datetime:
    """The first instant of the calendar month after `now`'s, in UTC."""
    start = month_start(now)
    return (
        start.replace(year=start.year + 1, month=1)
        if start.month == 12
        else start.replace(month=start.month + 1)
    )


def ledger_shard(job_id: str) -> int:
    """The ledger shard of a job: the same for every write of the job, in every process (a CRC
    of its id, not Python's salted `hash`), and spread over `SPEND_SHARDS` across jobs."""
    return zlib.crc32(job_id.encode()) % SPEND_SHARDS


async def count_job(session: AsyncSession, job: Job) -> None:
    """Count a job just submitted in its tenant's ledger. The caller commits."""
    await _add_to_ledger(session, job, jobs=1)


async def count_output(session: AsyncSession, job: Job, cost_usd: float | None) -> None:
    """Count an output of `job` just stored, once (the caller counts only the insert that
    happened): in the ledger, and its known cost in the job's own. An output of unknown price
    adds nothing to either. The caller commits."""
    await _add_to_ledger(session, job, images=1, cost_usd=cost_usd or 0.0)
    if cost_usd is not None:
        await session.execute(
            update(Job)
            .where(Job.id == job.id)
            .values(cost_usd=func.coalesce(Job.cost_usd, 0.0) + cost_usd)
        )


async def _add_to_ledger(
    session: AsyncSession, job: Job, *, jobs: int = 0, images: int = 0, cost_usd: float = 0.0
) -> None:
    """Add to the ledger's row of the job's tenant, day of submission (UTC), model and shard."""
    await session.execute(
        _ADD_TO_LEDGER,
        {
            "tenant_id": job.tenant_id,
            "day": job.created_at.astimezone(UTC).date(),
            "model": job.model,
            "shard": ledger_shard(job.id),
            "jobs": jobs,
            "images": images,
            "cost_usd": cost_usd,
        },
    )


# Postgres and SQLite spell this upsert alike, so it is written once, as text: built from the
# ORM on every call, it cost about a millisecond of CPU on each submission.
_ADD_TO_LEDGER = text(
    "INSERT INTO spend (tenant_id, day, model, shard, jobs, images, cost_usd) "
    "VALUES (:tenant_id, :day, :model, :shard, :jobs, :images, :cost_usd) "
    "ON CONFLICT (tenant_id, day, model, shard) DO UPDATE SET "
    "jobs = spend.jobs + excluded.jobs, images = spend.images + excluded.images, "
    "cost_usd = spend.cost_usd + excluded.cost_usd"
).bindparams(bindparam("day", type_=Date))


def held_back() -> ColumnElement[float]:
    """What a queued or running job counts beyond what its stored outputs cost so far: the rest
    of the top of its estimate (0 for a job with no estimate)."""
    estimate = func.coalesce(Job.estimated_cost_max_usd, 0.0)
    spent = func.coalesce(Job.cost_usd, 0.0)
    return case((estimate > spent, estimate - spent), else_=0.0)


def in_flight_between(tenant_id: str, start: datetime, end: datetime) -> ColumnElement[bool]:
    """The tenant's queued and running jobs submitted from `start` up to (not including)
    `end` (ids sort by creation time): few, and found by the partial index of such jobs."""
    return and_(
        Job.tenant_id == tenant_id,
        Job.in_flight(),
        Job.id >= first_id_at("job", start.timestamp()),
        Job.id < first_id_at("job", end.timestamp()),
    )


def _ledger_between(tenant_id: str, start: datetime, end: datetime) -> ColumnElement[bool]:
    return and_(Spend.tenant_id == tenant_id, Spend.day >= start.date(), Spend.day < end.date())


async def month_spend(session: AsyncSession, tenant_id: str, now: datetime) -> float:
    """The tenant's spend this month: what its stored outputs cost, and the rest of the top of
    the estimate of each job still queued or running. The ledger's few rows per day and model
    are read, not one per job."""
    start, end = month_start(now), next_month_start(now)
    stored = select(func.coalesce(func.sum(Spend.cost_usd), 0.0)).where(
        _ledger_between(tenant_id, start, end)
    )
    pending = select(func.coalesce(func.sum(held_back()), 0.0)).where(
        in_flight_between(tenant_id, start, end)
    )
    row = (await session.execute(select(stored.scalar_subquery(), pending.scalar_subquery()))).one()
    return round(float(row[0]) + float(row[1]), DIGITS)


async def daily_spend(
    session: AsyncSession, tenant_id: str, start: datetime, end: datetime
) -> list[DailyUsage]:
    """The tenant's jobs, images made and spend per UTC day and model from `start` up to
    `end`, oldest first, from the ledger and the jobs still queued or running. A job counts on
    the day it was submitted, under its model (the first of a comparison's)."""
    totals: dict[tuple[date, str], list[float]] = defaultdict(lambda: [0, 0, 0.0])
    ledger = await session.execute(
        select(
            Spend.day,
            Spend.model,
            func.sum(Spend.jobs),
            func.sum(Spend.images),
            func.sum(Spend.cost_usd),
        )
        .where(_ledger_between(tenant_id, start, end))
        .group_by(Spend.day, Spend.model)
    )
    for day, model, jobs, made, cost in ledger:
        totals[(day, model)] = [jobs, made, cost]
    pending = await session.execute(
        select(Job.created_at, Job.model, held_back()).where(
            in_flight_between(tenant_id, start, end)
        )
    )
    for created_at, model, cost in pending:
        totals[(created_at.astimezone(UTC).date(), model)][2] += cost
    return [
        DailyUsage(
            date=day, model=model, jobs=int(jobs), images=int(made), spent_usd=round(cost, DIGITS)
        )
        for (day, model), (jobs, made, cost) in sorted(totals.items())
    ]


async def check_budget(
    session: AsyncSession,
    tenant_id: str,
    budget_usd: float,
    estimate: PriceRange | None,
    *,
    refuse_unpriced: bool = False,
) -> None:
    """BudgetExceeded when the month's spend plus the top of `estimate` would pass
    `budget_usd`, or, with `refuse_unpriced`, when the job's cost cannot be estimated (None:
    a model's price is unknown; it counts 0 otherwise). The tenant's row is locked until the
    caller commits, so two submissions of one tenant cannot both take the last of its budget
    (tenants without a budget are never locked)."""
    if estimate is None and refuse_unpriced:
        raise BudgetExceeded(
            "This job's cost cannot be estimated (its model has no known price here), and "
            "this deployment refuses such jobs for tenants with a monthly budget.",
            monthly_budget_usd=budget_usd,
        )
    estimate_usd = estimate.max_usd if estimate else 0.0
    # FOR NO KEY UPDATE: it conflicts with itself, so the tenant's submissions queue up, but not
    # with the FOR KEY SHARE that inserting the tenant's rows (the inputs a request stored
    # before this check) holds until commit; FOR UPDATE would, and two such requests would
    # deadlock, each waiting for the other's inserts.
    await session.execute(
        select(Tenant.id).where(Tenant.id == tenant_id).with_for_update(key_share=True)
    )
    now = await database_now(session)
    spent = await month_spend(session, tenant_id, now)
    if spent + estimate_usd <= budget_usd + 10**-DIGITS:
        return
    raise BudgetExceeded(
        f"This job's estimated cost (up to ${estimate_usd:.4f}) would take this month's spend "
        f"(${spent:.4f}) past the tenant's monthly budget (${budget_usd:.2f}); "
        f"${max(budget_usd - spent, 0):.4f} remains until {next_month_start(now):%Y-%m-%d} UTC.",
        monthly_budget_usd=budget_usd,
        spent_usd=spent,
        estimated_cost_usd=estimate_usd,
    )


async def usage(
    session: AsyncSession, tenant_id: str, first: date | None = None, last: date | None = None
) -> Usage:
    """The tenant's spend, jobs and images per day and model from `first` to `last` (UTC days,
    both included; this month by default), and its spend this month against its budget."""
    budget = await session.scalar(select(Tenant.monthly_budget_usd).where(Tenant.id == tenant_id))
    now = await database_now(session)
    start = _day_start(first) if first else month_start(now)
    end = _day_start(last) + timedelta(days=1) if last else next_month_start(now)
    # A period that ends before it starts holds nothing.
    end = max(end, start)
    days = await daily_spend(session, tenant_id, start, end)
    month_spent = await month_spend(session, tenant_id, now)
    return Usage(
        period_start=start,
        period_end=end,
        spent_usd=round(sum(day.spent_usd for day in days), DIGITS),
        jobs=sum(day.jobs for day in days),
        images=sum(day.images for day in days),
        by_day=days,
        month_spent_usd=month_spent,
        monthly_budget_usd=budget,
        remaining_usd=None if budget is None else round(max(budget - month_spent, 0.0), DIGITS),
    )


def _day_start(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


async def set_budget(
    session: AsyncSession, tenant_name: str, budget_usd: float | None
) -> TenantBudget:
    """Set (or, with None, remove) a tenant's monthly budget; NotFound for an unknown tenant.
    The caller commits, then has the key caches forget the old budget."""
    tenant = await session.scalar(select(Tenant).where(Tenant.name == tenant_name))
    if tenant is None:
        raise NotFound(f"No tenant {tenant_name!r}.")
    tenant.monthly_budget_usd = budget_usd
    return TenantBudget(tenant=tenant.name, monthly_budget_usd=budget_usd)
