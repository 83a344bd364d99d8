"""Liveness (the process answers) and readiness (database, queue and asset store reachable)."""

import asyncio

from fastapi import APIRouter
from sqlalchemy import text

from app.db import Session
from app.deps import Context, Queue, Storage
from app.errors import ServiceUnavailable
from app.routers import problems
from app.schemas.common import Health
from app.services import catalog

router = APIRouter(tags=["health"])
READY_TIMEOUT_SECONDS = 3


@router.get("/healthz", operation_id="healthz", summary="Liveness", response_model=Health)
async def healthz() -> Health:
    """The process is up."""
    return Health()


@router.get(
    "/readyz",
    operation_id="readyz",
    summary="Readiness",
    response_model=Health,
    responses=problems(503),
)
async def readyz(session: Session, context: Context, queue: Queue, storage: Storage) -> Health:
    """The database, the queue and the asset store answer; 503 problem+json naming what does
    not. Each self-hosted model is listed too, with where it is loaded and its memory (or
    `not loaded`): informative, never a reason to be unready."""
    try:
        async with asyncio.timeout(READY_TIMEOUT_SECONDS):
            await session.execute(text("SELECT 1"))
    except Exception as exc:
        raise ServiceUnavailable("The database is not reachable.") from exc
    try:
        async with asyncio.timeout(READY_TIMEOUT_SECONDS):
            await queue.ping()
    except Exception as exc:
        raise ServiceUnavailable("The job queue is not reachable.") from exc
    try:
        async with asyncio.timeout(READY_TIMEOUT_SECONDS):
            await storage.check()
    except Exception as exc:
        raise ServiceUnavailable("The asset store is not reachable.") from exc
    checks = {"database": "ok", "queue": "ok", "storage": "ok"}
    return Health(checks=checks | await catalog.self_hosted_checks(context, queue))
