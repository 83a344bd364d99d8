"""Prometheus metrics of a Darkroom process: what the API serves at /metrics and a worker on its
own port. Every label is bounded (route templates, job kinds, catalog model ids, statuses,
outcomes): never an id, a raw path or a tenant. Updating one is a few dictionary lookups in
memory, so the submit path pays no query and no Redis call for them."""

import logging

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    exposition,
)

from app.config import Settings

logger = logging.getLogger(__name__)

# A `_created` timestamp beside every counter and histogram would double the series a scrape
# carries for what Prometheus works out from resets anyway.
disable_created_metrics()

# Request latencies run from a cached read to a `Prefer: wait` held for a minute.
REQUEST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
# Queue waits, runs and vendor calls run from an instant local draft to a slow vendor's minutes.
JOB_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900)

# The route label of a request no route matched (a 404 for an unknown path), so a scanner
# walking random paths makes one series, not one per path.
UNMATCHED_ROUTE = "unmatched"

http_requests = Counter(
    "darkroom_http_requests",
    "HTTP requests answered, by route template, method and status.",
    ["route", "method", "status"],
)
http_request_seconds = Histogram(
    "darkroom_http_request_duration_seconds",
    "Time from a request's arrival to the end of its response, by route template and method.",
    ["route", "method"],
    buckets=REQUEST_BUCKETS,
)
jobs_submitted = Counter(
    "darkroom_jobs_submitted", "Jobs created through the API, by kind and model.", ["kind", "model"]
)
jobs_finished = Counter(
    "darkroom_jobs_finished",
    "Jobs that reached a final status, by kind, model and status.",
    ["kind", "model", "status"],
)
job_queue_wait_seconds = Histogram(
    "darkroom_job_queue_wait_seconds",
    "Time from a job's creation to the start of its first run, by kind.",
    ["kind"],
    buckets=JOB_BUCKETS,
)
job_run_seconds = Histogram(
    "darkroom_job_run_duration_seconds",
    "Time one run of a job took, from its claim to its final status, by kind and status.",
    ["kind", "status"],
    buckets=JOB_BUCKETS,
)
jobs_in_flight = Gauge("darkroom_jobs_in_flight", "Jobs this process is running now.")
jobs_put_back = Counter(
    "darkroom_jobs_put_back",
    "Times a worker put a job back in line because its tenant was at its cap on running jobs.",
)
# The queue's depth, which only the API reads (at scrape time): kept out of the process-wide
# registry, so a worker's metrics do not carry a gauge that would stay 0 there.
_api_only = CollectorRegistry()
queue_depth = Gauge(
    "darkroom_queue_depth",
    "Job messages waiting in the queue for a runner, read at scrape time.",
    registry=_api_only,
)
vendor_calls = Counter(
    "darkroom_vendor_calls",
    "Calls to a model (retries within a call included), by vendor, model and outcome: ok, "
    "retryable_error, refused, timeout or error.",
    ["vendor", "model", "outcome"],
)
vendor_call_seconds = Histogram(
    "darkroom_vendor_call_duration_seconds",
    "Time one call to a model took, retries included, by vendor and model.",
    ["vendor", "model"],
    buckets=JOB_BUCKETS,
)
fallbacks = Counter(
    "darkroom_fallbacks",
    "Times a model failed for a passing reason and the request's next fallback model was tried, "
    "by the model passed over.",
    ["model"],
)
webhook_deliveries = Counter(
    "darkroom_webhook_delivery_attempts",
    "Webhook delivery attempts, by outcome: delivered, pending (to be retried), failed, "
    "disabled (the endpoint was turned off) or canceled.",
    ["outcome"],
)
cost_usd = Counter(
    "darkroom_cost_usd", "What the stored outputs cost at the vendors' prices, by model.", ["model"]
)


def render() -> tuple[bytes, str]:
    """The API process's metrics in the Prometheus text format, the queue's depth included,
    and their content type."""
    body = exposition.generate_latest(REGISTRY) + exposition.generate_latest(_api_only)
    return body, CONTENT_TYPE_LATEST


def serve_worker_metrics(settings: Settings) -> None:
    """Serve this worker's metrics on `worker_metrics_address:worker_metrics_port` from a
    thread of their own, unless the port is 0. A port already taken (two workers on one
    machine with the same setting) costs the metrics, not the worker."""
    port, address = settings.worker_metrics_port, settings.worker_metrics_address
    if port == 0:
        return
    try:
        exposition.start_http_server(port, addr=address)
    except OSError as error:
        logger.error(
            "cannot serve worker metrics on %s:%d (%s); set DARKROOM_WORKER_METRICS_PORT to a "
            "free port, or 0 to turn them off",
            address,
            port,
            error,
        )
        return
    logger.info("worker metrics on http://%s:%d/metrics", address, port)
