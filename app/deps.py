"""Request dependencies as `Annotated` aliases: the caller's tenant and the app's services."""

import hmac
from typing import Annotated

from fastapi import Depends, Header, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.config import Settings
from app.db import Session
from app.errors import NotFound, Unauthorized
from app.providers.registry import ProviderRegistry
from app.ratelimit import enforce_rate_limit
from app.runtime.context import TaskContext
from app.runtime.queue import JobQueue
from app.storage import Storage as AssetStorage

_bearer = HTTPBearer(auto_error=False, description="An API key from `darkroom keys create`.")


BearerCredentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


async def get_tenant(request: Request, session: Session, credentials: BearerCredentials) -> str:
    """The tenant id of the request's bearer key; 401 without a valid one, 429 when the key
    is over its rate limit."""
    if credentials is None:
        raise Unauthorized("Send an API key as `Authorization: Bearer <key>`.")
    # The idempotency middleware may have looked the key up already for this request.
    live = getattr(request.state, "api_key", None)
    if live is None:
        live = await request.app.state.key_cache.live(session, credentials.credentials)
    if live is None:
        raise Unauthorized("The API key is not valid.")
    request.state.api_key = live
    await enforce_rate_limit(request, credentials.credentials)
    return live.tenant_id


async def get_monthly_budget(
    request: Request, _tenant: Annotated[str, Depends(get_tenant)]
) -> float | None:
    """The caller's tenant's monthly budget in USD, remembered with its key; None for none."""
    return request.state.api_key.monthly_budget_usd


async def require_admin(request: Request, credentials: BearerCredentials) -> None:
    """Let through only the operator's DARKROOM_ADMIN_TOKEN, compared in constant time; 404
    when no token is set, so the operator API does not exist until it is configured."""
    token = request.app.state.settings.admin_token
    if token is None:
        raise NotFound("Not found.")
    sent = credentials.credentials if credentials is not None else ""
    if not hmac.compare_digest(sent.encode(), token.get_secret_value().encode()):
        raise Unauthorized("Send the admin token as `Authorization: Bearer <token>`.")


async def get_settings(request: Request) -> Settings:
    """The app's settings."""
    return request.app.state.settings


async def get_queue(request: Request) -> JobQueue:
    """The app's job queue."""
    return request.app.state.queue


async def get_storage(request: Request) -> AssetStorage:
    """The app's asset storage."""
    return request.app.state.storage


async def get_sessionmaker(request: Request) -> async_sessionmaker[AsyncSession]:
    """The app's session factory, for work that outlives the request's own session."""
    return request.app.state.sessionmaker


async def get_context(request: Request) -> TaskContext:
    """The process's task context, which job events are published through."""
    return request.app.state.context


async def get_registry(request: Request) -> ProviderRegistry:
    """The app's provider registry."""
    return request.app.state.registry


Tenant = Annotated[str, Depends(get_tenant)]
MonthlyBudget = Annotated[float | None, Depends(get_monthly_budget)]
AppSettings = Annotated[Settings, Depends(get_settings)]
Queue = Annotated[JobQueue, Depends(get_queue)]
Storage = Annotated[AssetStorage, Depends(get_storage)]
Registry = Annotated[ProviderRegistry, Depends(get_registry)]
Context = Annotated[TaskContext, Depends(get_context)]
Sessionmaker = Annotated[async_sessionmaker[AsyncSession], Depends(get_sessionmaker)]
IdempotencyKey = Annotated[
    str | None,
    Header(
        max_length=255,
        description=(
            "Any unique string; a retry with the same key and body within 24 hours gets the "
            "first response again. The same key with another body is 422; a retry while the "
            "first request still runs is 409."
        ),
    ),
]
Prefer = Annotated[
    str | None,
    Header(description="`wait=N`: hold the response up to N seconds (at most 60) for the result."),
]
