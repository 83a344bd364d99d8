"""The operator API: list, create, revoke and rotate API keys; set a tenant's monthly budget.
Every route needs the DARKROOM_ADMIN_TOKEN as its bearer token, and answers 404 while no token
is set."""

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, Response

from app.db import Session
from app.deps import require_admin
from app.routers import page_cursor, problems
from app.schemas.budgets import TenantBudget, TenantBudgetUpdate
from app.schemas.keys import (
    ApiKey,
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyPage,
    ApiKeyRotate,
    ApiKeyRotation,
)
from app.services import budgets, keys

router = APIRouter(prefix="/v1/admin", tags=["admin"], dependencies=[Depends(require_admin)])

KeyId = Annotated[
    str,
    Path(max_length=64, description="The key's id.", examples=["key_01JD7Z8Q3N5X2W1V0T9S8R7Q6P"]),
]


@router.get(
    "/keys",
    operation_id="list_api_keys",
    summary="List API keys",
    response_model=ApiKeyPage,
    responses=problems(401, 404, 422),
)
async def list_api_keys(
    session: Session,
    tenant: Annotated[
        str | None, Query(max_length=200, description="Only this tenant's keys (its name).")
    ] = None,
    cursor: page_cursor("key") = None,
    limit: Annotated[int, Query(ge=1, le=100, description="Items per page.")] = 20,
) -> ApiKeyPage:
    """Every key, or one tenant's, newest first, with its prefix, status and last use; never
    the secret."""
    return await keys.list_keys(session, tenant, cursor, limit)


@router.post(
    "/keys",
    operation_id="create_api_key",
    summary="Create an API key",
    status_code=201,
    response_model=ApiKeyCreated,
    responses=problems(401, 404, 415, 422),
)
async def create_api_key(body: ApiKeyCreate, response: Response, session: Session) -> ApiKeyCreated:
    """Mint a key for a tenant (created if new). The answer carries the key, shown only this
    once; only its hash is stored."""
    created = await keys.create(session, body.tenant)
    await session.commit()
    response.headers["Location"] = f"/v1/admin/keys/{created.id}"
    return created


@router.post(
    "/keys/{key_id}/revoke",
    operation_id="revoke_api_key",
    summary="Revoke an API key",
    response_model=ApiKey,
    responses=problems(401, 404),
)
async def revoke_api_key(key_id: KeyId, request: Request, session: Session) -> ApiKey:
    """Stop the key: every API process answers 401 to it within seconds. Revoking a revoked
    key changes nothing."""
    revoked = await keys.revoke(session, key_id)
    await session.commit()
    await request.app.state.key_cache.invalidate_everywhere()
    return revoked


@router.post(
    "/keys/{key_id}/rotate",
    operation_id="rotate_api_key",
    summary="Rotate an API key",
    status_code=201,
    response_model=ApiKeyRotation,
    responses=problems(401, 404, 409, 415, 422),
)
async def rotate_api_key(
    key_id: KeyId, request: Request, session: Session, body: ApiKeyRotate | None = None
) -> ApiKeyRotation:
    """Mint a new key for the same tenant (shown only in this answer); the old one keeps
    working for `grace_seconds` (without a body, the default), then stops. Only an active key
    rotates (else 409)."""
    grace_seconds = (body or ApiKeyRotate()).grace_seconds
    rotation = await keys.rotate(session, key_id, grace_seconds)
    await session.commit()
    await request.app.state.key_cache.invalidate_everywhere()
    return rotation


@router.put(
    "/tenants/{tenant}/budget",
    operation_id="set_tenant_budget",
    summary="Set a tenant's monthly budget",
    response_model=TenantBudget,
    responses=problems(401, 404, 415, 422),
)
async def set_tenant_budget(
    tenant: Annotated[str, Path(max_length=200, description="The tenant's name.")],
    body: TenantBudgetUpdate,
    request: Request,
    session: Session,
) -> TenantBudget:
    """Cap what the tenant's jobs may cost per calendar month (UTC): from then on a job whose
    estimated cost would take the month's spend past it is refused with 402 `budget-exceeded`.
    `null` removes the cap. Every API process applies it within seconds."""
    budget = await budgets.set_budget(session, tenant, body.monthly_budget_usd)
    await session.commit()
    # The budget is remembered with the tenant's keys.
    await request.app.state.key_cache.invalidate_everywhere()
    return budget
