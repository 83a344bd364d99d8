"""Monthly spend: what a tenant's jobs cost this calendar month (UTC), the budget an operator may
set, and the check that refuses a job whose estimated cost would take the spend past it."""

from datetime import UTC, datetime

from sqlalchemy import case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import database_now
from app.errors import BudgetExceeded, NotFound
from app.ids import first_id_at
from app.models import Job, JobStatus, Tenant
from app.schemas.budgets import TenantBudget, Usage
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


async def month_spend(session: AsyncSession, tenant_id: str, now: datetime) -> tuple[float, int]:
    """The tenant's spend this month and how many jobs it submitted: each job's reported cost,
    or, for a job still queued or running, the top of its estimate."""
    in_flight = Job.status.in_([JobStatus.QUEUED, JobStatus.RUNNING])
    estimate = case((in_flight, Job.estimated_cost_max_usd), else_=0.0)
    cost = func.coalesce(Job.cost_usd, estimate, 0.0)
    row = (
        await session.execute(
            # Ids sort by creation time: the month is a range of the (tenant_id, id) index.
            select(func.coalesce(func.sum(cost), 0.0), func.count()).where(
                Job.tenant_id == tenant_id,
                Job.id >= first_id_at("job", month_start(now).timestamp()),
            )
        )
    ).one()
    return round(float(row[0]), DIGITS), int(row[1])


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


async def usage(session: AsyncSession, tenant_id: str) -> Usage:
    """The tenant's spend this month against its budget."""
    budget = await session.scalar(select(Tenant.monthly_budget_usd).where(Tenant.id == tenant_id))
    now = await database_now(session)
    spent, jobs = await month_spend(session, tenant_id, now)
    return Usage(
        period_start=month_start(now),
        period_end=next_month_start(now),
        spent_usd=spent,
        jobs=jobs,
        monthly_budget_usd=budget,
        remaining_usd=None if budget is None else round(max(budget - spent, 0.0), DIGITS),
    )


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
