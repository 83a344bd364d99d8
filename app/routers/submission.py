"""What every job-creating route does: submit the body as a job of its kind through the one
pipeline, point at the job, and answer 200 when it finished within `Prefer: wait`."""

from typing import Annotated, TypeVar

from fastapi import Depends, Response
from pydantic import BaseModel

from app.db import Session
from app.deps import AppSettings, Context, MonthlyBudget, Prefer, Queue, Tenant
from app.models import FINAL_STATUSES
from app.schemas.jobs import COMPARE_JOB_EXAMPLE, Job
from app.services import jobs
from app.services.submission import Kind, Submitter, submit_job

RequestT = TypeVar("RequestT", bound=BaseModel)

# Responses every job-creating route documents besides its 202.
FINISHED_RESPONSE = {200: {"description": "The job finished within `Prefer: wait`.", "model": Job}}
# FINISHED_RESPONSE with a finished compare job shown, for POST /v1/generate.
COMPARE_RESPONSE = {
    200: FINISHED_RESPONSE[200]
    | {
        "content": {
            "application/json": {
                "examples": {
                    "compare": {
                        "summary": "A job comparing two models, where one output was refused",
                        "value": COMPARE_JOB_EXAMPLE,
                    }
                }
            }
        }
    }
}


class JobSubmission:
    """The request's submitter, its response and its `Prefer` header."""

    def __init__(
        self,
        response: Response,
        session: Session,
        tenant: Tenant,
        budget: MonthlyBudget,
        settings: AppSettings,
        queue: Queue,
        context: Context,
        prefer: Prefer = None,
    ) -> None:
        self.response = response
        self.submitter = Submitter(session, tenant, context, queue, budget)
        self.wait = jobs.requested_wait(prefer, settings.max_wait_seconds)

    async def submit(
        self, kind: Kind[RequestT], body: RequestT, idempotency_key: str | None
    ) -> Job:
        """Submit the job. Answers 202 with the job and its Location, or 200 with the finished
        job if it finishes within `Prefer: wait=N`."""
        job, _ = await submit_job(self.submitter, kind, body, idempotency_key, self.wait)
        self.response.headers["Location"] = f"/v1/jobs/{job.id}"
        if not self.wait:
            return await jobs.job_view(self.submitter.session, job)
        self.response.headers["Preference-Applied"] = f"wait={self.wait}"
        if job.status in FINAL_STATUSES:
            self.response.status_code = 200
        # The waited-for job's outputs are read on their own, without a transaction.
        async with self.submitter.context.reader() as session:
            return await jobs.job_view(session, job)


Submission = Annotated[JobSubmission, Depends()]
