"""Job lifecycle events (queued, started, progress, succeeded, failed, canceled), told to
whoever listens: live-progress streams and webhook deliveries. A listener's failure is
logged and never fails the job."""

import logging
from typing import Any

from app.models import Job, JobEventType
from app.runtime.context import TaskContext

logger = logging.getLogger(__name__)


async def publish(
    context: TaskContext, job: Job, event: JobEventType, data: dict[str, Any] | None = None
) -> None:
    """Tell every listener that `job` reached `event`."""
    for listener in context.listeners:
        try:
            await listener(context, job, event, data or {})
        except Exception:
            logger.exception("job %s: a listener failed on %s", job.id, event)
