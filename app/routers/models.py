"""GET /v1/models: the model catalog with capabilities, price and latency."""

from fastapi import APIRouter

from app.db import Session
from app.deps import Context, Queue, Tenant
from app.routers import problems
from app.schemas.catalog import ModelList
from app.services import catalog

router = APIRouter(prefix="/v1/models", tags=["models"])


@router.get(
    "",
    operation_id="list_models",
    summary="List models",
    response_model=ModelList,
    responses=problems(401),
)
async def list_models(
    session: Session, context: Context, queue: Queue, tenant: Tenant
) -> ModelList:
    """Every model this server knows: whether it is available here, what it can do, its price,
    its median latency over this installation's recent outputs, and for a self-hosted model
    where it is loaded and its memory."""
    return await catalog.list_models(session, context, queue)
