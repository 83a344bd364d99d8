"""The caller's spend this month against its budget."""

from fastapi import APIRouter

from app.db import Session
from app.deps import Tenant
from app.routers import problems
from app.schemas.budgets import Usage
from app.services import budgets

router = APIRouter(prefix="/v1/usage", tags=["usage"])


@router.get(
    "",
    operation_id="get_usage",
    summary="Get this month's spend",
    response_model=Usage,
    responses=problems(401),
)
async def get_usage(session: Session, tenant: Tenant) -> Usage:
    """What the tenant's jobs cost this calendar month (UTC), how many it submitted, and what
    remains of its monthly budget if it has one."""
    return await budgets.usage(session, tenant)
