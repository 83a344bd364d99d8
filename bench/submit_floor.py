"""The floor that bench/submit.py measures `POST /v1/generate` against: a minimal FastAPI app
doing only the work a submission cannot skip, on the same tables and queue as Darkroom.

Per request: the bearer key looked up by its hash in `api_keys`, the body validated by the same
pydantic model as Darkroom's route (GenerateRequest), one INSERT of a queued job into `jobs` (in
the same transaction as the lookup, through Darkroom's engine settings), and one arq enqueue of
the job id under Darkroom's task name and JSON serializer; the answer is a 202 with the job's id.
It is served by uvicorn with the same settings as `darkroom serve`, and reads the same DARKROOM_*
settings (database, Redis, queue name, host, port). bench/submit.py starts it; by hand:

    DARKROOM_DATABASE_URL=postgresql+asyncpg://... DARKROOM_REDIS_URL=redis://... \\
        .venv/bin/python bench/submit_floor.py
"""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Annotated

import uvicorn
from arq import create_pool
from arq.connections import RedisSettings
from fastapi import FastAPI, Header, HTTPException, Request, Response
from sqlalchemy import insert, select

from app.config import Settings
from app.db import create_engine
from app.ids import new_id
from app.logs import uvicorn_log_config
from app.models import ApiKey, Job, JobKind, JobStatus
from app.runtime.queue import TASK_NAME, json_deserializer, json_serializer
from app.schemas.generate import GenerateRequest
from app.services.keys import hash_key


def create_floor_app(settings: Settings) -> FastAPI:
    """The floor app for these settings."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.engine = create_engine(str(settings.database_url))
        app.state.redis = await create_pool(
            RedisSettings.from_dsn(str(settings.redis_url)),
            job_serializer=json_serializer,
            job_deserializer=json_deserializer,
            default_queue_name=settings.queue_name,
        )
        try:
            yield
        finally:
            await app.state.redis.aclose()
            await app.state.engine.dispose()

    app = FastAPI(lifespan=lifespan)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/v1/generate", status_code=202)
    async def generate(
        body: GenerateRequest,
        request: Request,
        response: Response,
        authorization: Annotated[str, Header()] = "",
    ) -> dict[str, str]:
        job_id = new_id("job")
        async with request.app.state.engine.begin() as connection:
            tenant_id = await connection.scalar(
                select(ApiKey.tenant_id).where(
                    ApiKey.key_hash == hash_key(authorization.removeprefix("Bearer ")),
                    ApiKey.revoked_at.is_(None),
                )
            )
            if tenant_id is None:
                raise HTTPException(401, "The API key is not valid.")
            now = datetime.now(UTC)
            await connection.execute(
                insert(Job).values(
                    id=job_id,
                    tenant_id=tenant_id,
                    kind=JobKind.GENERATE,
                    status=JobStatus.QUEUED,
                    model=body.model or settings.default_model,
                    request=body.model_dump(mode="json"),
                    created_at=now,
                    attempts=0,
                    dispatches=1,
                    dispatched_at=now,
                )
            )
        await request.app.state.redis.enqueue_job(
            TASK_NAME, job_id, _job_id=job_id, _queue_name=settings.queue_name
        )
        response.headers["Location"] = f"/v1/jobs/{job_id}"
        return {"id": job_id, "object": "job", "status": JobStatus.QUEUED}

    return app


def main() -> None:
    """Serve the floor app as `darkroom serve` serves Darkroom."""
    settings = Settings()
    uvicorn.run(
        create_floor_app(settings),
        host=settings.host,
        port=settings.port,
        log_level="info",
        log_config=uvicorn_log_config(),
    )


if __name__ == "__main__":
    main()
