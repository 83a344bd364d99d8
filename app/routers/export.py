"""POST /v1/export and GET /v1/export/presets: production-ready files for every destination."""

from fastapi import APIRouter

from app.deps import IdempotencyKey, Tenant
from app.routers import problems
from app.routers.submission import FINISHED_RESPONSE, Submission
from app.schemas.export import ExportPresetList, ExportRequest
from app.schemas.jobs import Job
from app.services import export

router = APIRouter(prefix="/v1/export", tags=["export"])


@router.post(
    "",
    operation_id="export_asset",
    summary="Export an asset for destinations",
    status_code=202,
    response_model=Job,
    responses=FINISHED_RESPONSE | problems(400, 401, 402, 404, 409, 413, 415, 422),
)
async def export_asset(
    body: ExportRequest, submission: Submission, idempotency_key: IdempotencyKey = None
) -> Job:
    """Queue an export job: one output asset per target, in order (of source `export`, with
    the asset as its parent), then the zip when `bundle` is set. Answers 202 with the job and
    its Location; with `Prefer: wait=N` answers 200 with the finished job if it finishes within
    N seconds."""
    return await submission.submit(export.EXPORT, body, idempotency_key)


@router.get(
    "/presets",
    operation_id="list_export_presets",
    summary="List export presets",
    response_model=ExportPresetList,
    responses=problems(401),
)
async def list_export_presets(tenant: Tenant) -> ExportPresetList:
    """Every named destination size a target may use."""
    return export.list_presets()
