"""The data of one server-sent job event (GET /v1/jobs/{id}/events)."""

from pydantic import BaseModel, ConfigDict, Field

from app.models import JobStatus
from app.schemas.jobs import Job


class JobEvent(BaseModel):
    """The JSON `data` of a job event; the SSE `event` field names the event."""

    model_config = ConfigDict(
        json_schema_extra={
            "example": {
                "job_id": "job_01JD7Z8Q3N5X2W1V0T9S8R7Q6P",
                "status": "running",
                "completed": 1,
                "total": 2,
            }
        }
    )

    job_id: str = Field(
        description="The job the event is about.", examples=["job_01JD7Z8Q3N5X2W1V0T9S8R7Q6P"]
    )
    status: JobStatus = Field(description="The job's status once the event happened.")
    completed: int | None = Field(
        None, description="`progress` only: outputs made so far.", examples=[1]
    )
    total: int | None = Field(None, description="`progress` only: outputs to make.", examples=[2])
    step: int | None = Field(
        None,
        description="`progress` of a self-hosted model only: the denoising step just done "
        "(of the outputs being made now).",
        examples=[12],
    )
    steps: int | None = Field(
        None,
        description="`progress` of a self-hosted model only: the denoising steps of the "
        "outputs being made now.",
        examples=[30],
    )
    job: Job | None = Field(
        None,
        description="Final events (succeeded, failed, canceled) only: the whole job; absent "
        "from the `canceled` of a job canceled by its deletion.",
    )
