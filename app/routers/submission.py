"""What every job-creating route does once its service has added the job: commit, announce
and enqueue a new job, point at it, and wait for it when the caller prefers."""

from typing import Annotated

from fastapi import Depends, Response

from app import schemas
from app.db import Session
from app.deps import AppSettings, Context, Prefer, Queue, Sessionmaker, Tenant
from app.models import Job
from app.services import jobs

# Responses every job-creating route documents besides its 202.
FINISHED_RESPONSE = {
    200: {"description": "The job finished within `Prefer: wait`.", "model": schemas.Job}
}


class JobSubmission:
    """The request's session, queue and `Prefer` header, for answering with a job."""

    def __init__(
        self,
        response: Response,
        session: Session,
        sessionmaker: Sessionmaker,
        tenant: Tenant,
        settings: AppSettings,
        queue: Queue,
        context: Context,
        prefer: Prefer = None,
    ) -> None:
        self.response = response
        self.session = session
        self.sessionmaker = sessionmaker
        self.tenant = tenant
        self.settings = settings
        self.queue = queue
        self.context = context
        self.prefer = prefer

    async def accept(self, job: Job, created: bool) -> schemas.Job:
        """Commit; for a new job announce it and enqueue it. Answers 202 with the job and its
        Location, or 200 with the finished job if it finishes within `Prefer: wait=N`."""
        wait = jobs.requested_wait(self.prefer, self.settings.max_wait_seconds)
        await self.session.commit()
        if created:
            await jobs.start(self.context, self.queue, job)
        self.response.headers["Location"] = f"/v1/jobs/{job.id}"
        if wait:
            self.response.headers["Preference-Applied"] = f"wait={wait}"
            job = await jobs.wait_for_job(self.sessionmaker, self.tenant, job.id, wait)
            if job.status in jobs.FINAL_STATUSES:
                self.response.status_code = 200
        return await jobs.job_view(self.session, job)


Submission = Annotated[JobSubmission, Depends()]
