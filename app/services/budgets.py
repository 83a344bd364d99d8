"""Monthly spend: what a tenant's jobs cost this calendar month (UTC), the budget an operator may
set, and the check that refuses a job whose estimated cost would take the spend past it."""

from collections import defaultdict
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import ColumnElement, and_, case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import database_now
from app.errors import BudgetExceeded, NotFound
from app.ids import first_id_at
from app.models import Asset, Job, JobStatus, Tenant
from app.schemas.budgets import DailyUsage, TenantBudget, Usage
from app.schemas.catalog import PriceRange

# Sums of float prices are rounded to a millionth of a dollar, so 0.1 + 0.2 fits a 0.3 budget.
DIGITS = 6


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


def job_spend() -> ColumnElement[float]:
    """What a job counts against a budget: its reported cost, or, for a job still queued or
    running, the top of its estimate; 0 for one that ended without a cost."""
    in_flight = Job.status.in_([JobStatus.QUEUED, JobStatus.RUNNING])
    estimate = case((in_flight, Job.estimated_cost_max_usd), else_=0.0)
    return func.coalesce(Job.cost_usd, estimate, 0.0)


def submitted_between(tenant_id: str, start: datetime, end: datetime) -> ColumnElement[bool]:
    """The tenant's jobs submitted from `start` up to (not including) `end`: ids sort by
    creation time, so this is a range of the (tenant_id, id) index."""
    return and_(
        Job.tenant_id == tenant_id,
        Job.id >= first_id_at("job", start.timestamp()),
        Job.id < first_id_at("job", end.timestamp()),
    )


async def month_spend(session: AsyncSession, tenant_id: str, now: datetime) -> tuple[float, int]:
    """The tenant's spend this month and how many jobs it submitted (see `job_spend`)."""
    row = (
        await session.execute(
            select(func.coalesce(func.sum(job_spend()), 0.0), func.count()).where(
                submitted_between(tenant_id, month_start(now), next_month_start(now))
            )
        )
    ).one()
    return round(float(row[0]), DIGITS), int(row[1])


async def daily_spend(
    session: AsyncSession, tenant_id: str, start: datetime, end: datetime
) -> list[DailyUsage]:
    """The tenant's jobs, images made and spend per UTC day and model from `start` up to
    `end`, oldest first. A job counts on the day it was submitted, under its model (the first
    of a comparison's)."""
    images = select(func.count(Asset.id)).where(Asset.job_id == Job.id).scalar_subquery()
    rows = await session.execute(
        select(Job.created_at, Job.model, job_spend(), images).where(
            submitted_between(tenant_id, start, end)
        )
    )
    totals: dict[tuple[date, str], list[float]] = defaultdict(lambda: [0, 0, 0.0])
    for created_at, model, cost, made in rows:
        total = totals[(created_at.astimezone(UTC).date(), model)]
        total[0] += 1
        total[1] += made
        total[2] += cost
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
    await session.execute(select(Tenant.id).where(Tenant.id == tenant_id).with_for_update())
    now = await database_now(session)
    spent, _ = await month_spend(session, tenant_id, now)
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
    month_spent, _ = await month_spend(session, tenant_id, now)
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
