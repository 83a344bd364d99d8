"""What every job kind shares: the runner the task body drives, and how it calls a model with
the request's fallbacks."""

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from sqlalchemy import update

from app import metrics
from app.errors import ProviderError, ProviderTimedOut
from app.models import Job
from app.providers.base import GenerateResult, ModelSpec, Provider, RenderOptions
from app.providers.breaker import fallback_available
from app.runtime.context import TaskContext
from app.services.assets import Output
from app.services.prompting import replan_with_llm

logger = logging.getLogger(__name__)


class KindRunner:
    """Runs one job of a kind. The task body calls `prepare` once per run, then `make` for each
    index in `range(output_count())` that the job does not have yet, storing each output
    before asking for the next."""

    def __init__(self, context: TaskContext, job: Job) -> None:
        self.context = context
        self.job = job
        self.request: dict[str, Any] = job.request
        # Indexes already stored (by an earlier run too); the task body keeps it current.
        self.done: set[int] = set()

    async def prepare(self) -> None:
        """Load what every output needs (source images, a shared downscale); by default, plan
        the prompt with the LLM when the request asks for it."""
        await self.plan_prompt()

    async def plan_prompt(self) -> None:
        """For `optimize: llm`, ask the LLM once per job, and once per compared model, all at
        once (each answer, or the rules' fallback, is written to the job's request so every
        output and every re-run uses the same)."""
        if self.request.get("optimize") != "llm" or self.request.get("llm_planned"):
            return
        settings = self.context.settings
        compared = list(self.request.get("model_prompts", {}).items())
        fields, *plans = await asyncio.gather(
            replan_with_llm(settings, self.request),
            *(replan_with_llm(settings, self.request | own_fields) for _, own_fields in compared),
        )
        own = {
            model: own_fields | plan
            for (model, own_fields), plan in zip(compared, plans, strict=True)
        }
        self.request = self.request | fields | {"llm_planned": True}
        if own:
            self.request["model_prompts"] = own
        async with self.context.sessionmaker() as session:
            await session.execute(
                update(Job).where(Job.held_by(self.job)).values(request=self.request)
            )
            await session.commit()

    def output_count(self) -> int:
        """How many outputs the job makes: `n` on each compared model, else `n`."""
        return int(self.request["n"]) * len(self.request.get("models") or [self.job.model])

    def compares_models(self) -> bool:
        """Whether the job runs its request on several models side by side, each model's
        outputs a group of their own, where one model failing leaves the others' outputs (a
        job on one model fails with that model's own problem)."""
        return len(self.request.get("models") or ()) > 1

    def models_for(self, index: int) -> tuple[list[str], int]:
        """The models to try for output `index` (its compared model, else the job's model and
        its fallbacks), and its position within its group: outputs 0..n-1 are the first
        model's, n..2n-1 the second's, and so on, with the same seeds in every group."""
        models = self.request.get("models")
        if not models:
            return model_chain(self.job), index
        group, position = divmod(index, int(self.request["n"]))
        return [models[group]], position

    def output_concurrency(self) -> int:
        """How many outputs are made at once: by default every output is its own model call,
        so a job's outputs wait on the model together, up to the setting's bound."""
        return self.context.settings.job_output_concurrency

    async def make(self, index: int) -> Output:
        """Make output `index`."""
        raise NotImplementedError

    def failure(self, index: int, error: ProviderError) -> dict[str, Any]:
        """What a compared model's failed output records: its index, model, seed and problem."""
        models, position = self.models_for(index)
        seed = output_seed(int(self.request["seed"]), position)
        return {"index": index, "model": models[0], "seed": seed, "error": error.to_problem()}


T = TypeVar("T")


def output_seed(seed: int, index: int) -> int:
    """The seed of output `index` of a group: the job's seed plus the index, within 32 bits."""
    return (seed + index) % 2**32


def model_chain(job: Job) -> list[str]:
    """The job's model, then its fallbacks in order."""
    return [job.model, *job.request.get("fallback_models", [])]


def render_of(request: dict[str, Any]) -> RenderOptions:
    """The render options a job's normalized request asks for (a job recorded before they
    existed asks for the defaults)."""
    return RenderOptions(
        quality=request.get("quality", "auto"),
        background=request.get("background", "auto"),
        output_compression=request.get("output_compression"),
        moderation=request.get("moderation", "auto"),
    )


async def call_with_fallbacks(
    context: TaskContext, models: list[str], call: Callable[[Provider, ModelSpec], Awaitable[T]]
) -> tuple[T, dict[str, Any]]:
    """Call the first model; when it fails for a retryable reason (overloaded, timed out,
    unreachable, its breaker open), the next, in order. Only the last model's call waits for an
    open breaker. What the call made, and the facts of the call to record: the model that
    made it, its latency, and the models that failed before it."""
    failed: list[dict[str, Any]] = []
    for position, model_id in enumerate(models):
        provider, spec = context.registry.resolve(model_id)
        started = time.perf_counter()
        last = position == len(models) - 1
        try:
            with contextlib.nullcontext() if last else fallback_available():
                made = await call(provider, spec)
        except Exception as exc:
            _record_call(provider.name, spec.id, call_outcome(exc), started)
            if not isinstance(exc, ProviderError) or not exc.retryable or last:
                if failed and isinstance(exc, ProviderError):
                    exc.extensions["fallbacks_failed"] = failed
                raise
            metrics.fallbacks.labels(spec.id).inc()
            failed.append({"model": model_id, "error": exc.slug, "detail": exc.detail})
            continue
        latency_ms = _record_call(provider.name, spec.id, "ok", started)
        facts: dict[str, Any] = {"model": spec.id, "latency_ms": latency_ms}
        if failed:
            facts["fallbacks_failed"] = failed
        return made, facts
    raise AssertionError("call_with_fallbacks needs at least one model")


def call_outcome(error: Exception) -> str:
    """How a failed model call is counted: timeout, retryable_error (overloaded, unreachable,
    malformed answers on every attempt), refused (the vendor will not make it: moderation,
    invalid for the model, credentials, quota) or error (anything unexpected)."""
    if isinstance(error, ProviderTimedOut | TimeoutError):
        return "timeout"
    if isinstance(error, ProviderError):
        return "retryable_error" if error.retryable else "refused"
    return "error"


def _record_call(vendor: str, model: str, outcome: str, started: float) -> int:
    """Count, time and log one model call; its latency in milliseconds."""
    seconds = time.perf_counter() - started
    metrics.vendor_calls.labels(vendor, model, outcome).inc()
    metrics.vendor_call_seconds.labels(vendor, model).observe(seconds)
    latency_ms = round(seconds * 1000)
    logger.info(
        "%s call to %s: %s in %d ms",
        vendor,
        model,
        outcome,
        latency_ms,
        extra={"vendor": vendor, "model": model, "status": outcome, "latency_ms": latency_ms},
    )
    return latency_ms


def output_details(result: GenerateResult, call_facts: dict[str, Any]) -> dict[str, Any]:
    """The details of an output: the model, latency and cost, what the vendor reported, then
    the fallbacks that failed before."""
    head = {key: value for key, value in call_facts.items() if key != "fallbacks_failed"}
    tail = {key: value for key, value in call_facts.items() if key == "fallbacks_failed"}
    return head | {"cost_usd": result.cost_usd} | result.details | tail
