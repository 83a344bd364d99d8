"""Monthly spend and budgets: what `GET /v1/usage` answers and what the operator API sets."""

from datetime import date as date_type
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from app.schemas.common import JsonNumber

MAX_BUDGET_USD = 1_000_000_000


class DailyUsage(BaseModel):
    """One model's jobs on one day (UTC)."""

    date: date_type = Field(description="The UTC day the jobs were submitted.")
    model: str = Field(
        description="The jobs' model (the first of a comparison's).", examples=["local/draft"]
    )
    jobs: int = Field(description="Jobs submitted, deleted ones too.", examples=[12])
    images: int = Field(description="Images they made (outputs stored).", examples=[24])
    spent_usd: float = Field(
        description="Their cost: the known cost of every output they stored (deleted jobs' "
        "too), and for a job still queued or running the rest of the top of its estimate.",
        examples=[0.96],
    )


class Usage(BaseModel):
    """The tenant's jobs, images and spend for a period, by day and model, and its spend this
    calendar month (UTC) against its budget."""

    model_config = ConfigDict(
        json_schema_extra={
            "example": {
                "object": "usage",
                "period_start": "2026-12-01T00:00:00Z",
                "period_end": "2027-01-01T00:00:00Z",
                "spent_usd": 12.48,
                "jobs": 311,
                "images": 540,
                "by_day": [
                    {
                        "date": "2026-12-01",
                        "model": "openai/gpt-image-1-mini",
                        "jobs": 40,
                        "images": 80,
                        "spent_usd": 1.6,
                    }
                ],
                "month_spent_usd": 12.48,
                "monthly_budget_usd": 50.0,
                "remaining_usd": 37.52,
            }
        }
    )

    object: Literal["usage"] = Field("usage", description="Always `usage`.")
    period_start: datetime = Field(description="The first instant of the period, UTC.")
    period_end: datetime = Field(description="The first instant after the period, UTC.")
    spent_usd: float = Field(
        description="The cost of the period's jobs: the known cost of every output they stored "
        "(deleted jobs' too), and for a job still queued or running the rest of the top of its "
        "estimate.",
        examples=[12.48],
    )
    jobs: int = Field(description="Jobs submitted in the period, deleted ones too.", examples=[311])
    images: int = Field(description="Images the period's jobs made.", examples=[540])
    by_day: list[DailyUsage] = Field(description="The period by day and model, oldest first.")
    month_spent_usd: float = Field(
        description="The cost of this calendar month's jobs (UTC), what the budget is held to.",
        examples=[12.48],
    )
    monthly_budget_usd: float | None = Field(
        description="The tenant's monthly budget; null for none.", examples=[50.0]
    )
    remaining_usd: float | None = Field(
        description="What is left of the budget this month (never below 0); null without one.",
        examples=[37.52],
    )


# USD a month: a finite JSON number from 0 to MAX_BUDGET_USD (not true, false or "50").
BudgetAmount = Annotated[float, Field(ge=0, le=MAX_BUDGET_USD, allow_inf_nan=False), JsonNumber]


class TenantBudgetUpdate(BaseModel):
    """A tenant's monthly budget."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"example": {"monthly_budget_usd": 50.0}}
    )

    monthly_budget_usd: BudgetAmount | None = Field(
        description="USD the tenant's jobs may cost per calendar month (UTC); a job whose "
        "estimated cost would pass what remains is refused with 402. null removes the budget.",
        examples=[50.0],
    )


class TenantBudget(BaseModel):
    """A tenant's monthly budget, as set."""

    object: Literal["tenant_budget"] = Field("tenant_budget", description="Always `tenant_budget`.")
    tenant: str = Field(description="The tenant's name.", examples=["acme"])
    monthly_budget_usd: float | None = Field(
        description="USD per calendar month; null for none.", examples=[50.0]
    )
