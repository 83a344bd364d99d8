"""The FastAPI application factory; its lifespan wires database, storage, providers and queue."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.telemetry import TelemetryConfig
from fastapi_offline import FastAPIOffline

from app.access import RequestObservability
from app.config import Settings
from app.errors import install_error_handlers
from app.idempotency import IdempotencyKeys
from app.jobs import tasks
from app.jobs.background import run_background
from app.limits import BodySizeLimit
from app.openapi import install_openapi
from app.ratelimit import RateLimitHeaders, open_rate_limiter
from app.routers import (
    admin,
    assets,
    edit,
    estimate,
    export,
    generate,
    health,
    jobs,
    metrics,
    models,
    openai_compat,
    playground,
    problem_types,
    prompts,
    usage,
)
from app.routers import events as job_events
from app.routers import webhooks as webhook_routes
from app.runtime import Role, open_runtime
from app.services.keys import KeyCache, keep_keys_current

DESCRIPTION = (
    "Darkroom is an async API for AI image work: generate images from a brief, edit photos, "
    "make variants and export files for every destination, over many image models."
)


TELEMETRY_ON: TelemetryConfig = {"tracing": True, "metrics": True, "logs": True}
TELEMETRY_OFF: TelemetryConfig = {"tracing": False, "metrics": False, "logs": False}


def create_app(settings: Settings | None = None) -> FastAPI:
    """A Darkroom app for these settings (by default, read from the environment)."""
    settings = settings or Settings()
    # /docs and /redoc load Swagger UI and ReDoc from files in the fastapi-offline wheel, not from
    # a CDN, so the reference works where the API host has no internet.
    app = FastAPIOffline(
        title="Darkroom",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=_lifespan,
        # Swagger UI's default validator is a public web service; nothing needs to leave here.
        swagger_ui_parameters={"validatorUrl": None},
        # FastAPI's own OpenTelemetry layer asks for the global providers on every request even
        # when nothing collects what it would send; it is on only when asked for.
        telemetry=TELEMETRY_ON if settings.opentelemetry else TELEMETRY_OFF,
        openapi_tags=[
            {"name": "generate", "description": "Make images from a brief."},
            {"name": "edit", "description": "Edit photos and make variants of images."},
            {"name": "prompts", "description": "The prompt optimizer."},
            {"name": "export", "description": "Files sized and encoded for every destination."},
            {"name": "jobs", "description": "Follow, list and cancel jobs."},
            {"name": "assets", "description": "Upload images and download results."},
            {"name": "models", "description": "The model catalog."},
            {"name": "webhooks", "description": "Receive job events, signed, at your URLs."},
            {"name": "usage", "description": "Spend this month against the budget."},
            {"name": "health", "description": "Liveness and readiness."},
            {"name": "problems", "description": "What each problem type means and what to do."},
            {
                "name": "admin",
                "description": "The operator API: API keys and tenant budgets. Needs "
                "DARKROOM_ADMIN_TOKEN as the bearer token; 404 while it is unset.",
            },
            {
                "name": "openai-compatible",
                "description": "OpenAI's Images API (generations, edits, variations), for "
                "products on the official `openai` clients; errors in OpenAI's shape.",
            },
        ],
    )
    app.state.settings = settings
    app.state.key_cache = KeyCache(settings.key_cache_seconds)
    # Inside the body size limit, which bounds what the idempotency layer reads.
    app.add_middleware(IdempotencyKeys)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(RateLimitHeaders)
    # Outermost: the request id, access log line and HTTP metrics cover every layer below.
    app.add_middleware(RequestObservability)
    install_error_handlers(app)
    install_openapi(app)
    for router in (
        generate.router,
        edit.router,
        prompts.router,
        export.router,
        estimate.router,
        jobs.router,
        job_events.router,
        assets.router,
        webhook_routes.router,
        models.router,
        health.router,
        problem_types.router,
        openai_compat.router,
        usage.router,
        admin.router,
    ):
        app.include_router(router)
    if settings.metrics:
        app.include_router(metrics.router)
    if settings.playground:
        playground.install(app)
    return app


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    async with (
        open_runtime(settings, Role.API, run_job=tasks.run_job) as runtime,
        run_background(runtime) as webhooks,
        open_rate_limiter(settings) as rate_limiter,
        keep_keys_current(app.state.key_cache, runtime.context.sessionmaker, runtime.redis),
    ):
        context = runtime.context
        app.state.rate_limiter = rate_limiter
        app.state.webhooks = webhooks
        app.state.context = context
        app.state.sessionmaker = context.sessionmaker
        app.state.storage = context.storage
        app.state.registry = context.registry
        app.state.queue = runtime.queue
        yield
