"""The caller's spend for a period, by day and model, and this month's against its budget."""

from typing import Annotated

from fastapi import APIRouter, Query

from app.db import Session
from app.deps import Tenant
from app.routers import QueryDate, problems
from app.schemas.budgets import Usage
from app.services import budgets

router = APIRouter(prefix="/v1/usage", tags=["usage"])


@router.get(
    "",
    operation_id="get_usage",
    summary="Get spend by day and model",
    response_model=Usage,
    responses=problems(401, 422),
)
async def get_usage(
    session: Session,
    tenant: Tenant,
    first: Annotated[
        QueryDate | None,
        Query(alias="from", description="The first UTC day of the period; the month's first."),
    ] = None,
    last: Annotated[
        QueryDate | None,
        Query(
            alias="to", description="The last UTC day of the period (included); the month's last."
        ),
    ] = None,
) -> Usage:
    """The tenant's jobs, images and spend for a period (this calendar month, UTC, unless
    `from` and `to` say otherwise; one ending before it starts holds nothing), in all and by
    day and model, and its spend this month against its monthly budget if it has one."""
    return await budgets.usage(session, tenant, first, last)
