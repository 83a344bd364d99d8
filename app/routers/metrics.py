"""GET /metrics: this API process's Prometheus metrics, for a scraper rather than an API caller
(left out of the OpenAPI document). Mounted only while DARKROOM_METRICS is on."""

from fastapi import APIRouter, Response

from app import metrics
from app.db import Session
from app.services.jobs import queued_count

router = APIRouter(include_in_schema=False)


@router.get("/metrics")
async def read_metrics(session: Session) -> Response:
    """The metrics in the Prometheus text format. The queue depth is read here, once a scrape,
    so no request pays for it."""
    metrics.queue_depth.set(await queued_count(session))
    body, content_type = metrics.render()
    return Response(body, media_type=content_type)
