"""OpenAI-compatible Images API: `POST /v1/images/generations`, `/v1/images/edits` and
`/v1/images/variations`, so that a product using the official `openai` client moves to Darkroom
by changing its `base_url` and `api_key` only.

Each call is synchronous: it records a Darkroom job (seen in GET /v1/jobs like any other, its
outputs stored as assets), waits for it up to the server's wait cap, and answers with OpenAI's
ImagesResponse. Errors on these routes, and only these, are OpenAI's error object
`{"error": {message, type, param, code}}` rather than problem+json: that is the shape OpenAI's
clients parse into their typed exceptions (BadRequestError, AuthenticationError, ...)."""

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.db import Session
from app.deps import AppSettings, Context, IdempotencyKey, MonthlyBudget, Queue, Tenant
from app.errors import DarkroomError
from app.models import Asset
from app.routers import problems
from app.schemas.openai_compat import (
    ImageEditFields,
    ImageGenerationRequest,
    ImagesResponse,
    ImageVariationFields,
    OpenAIError,
)
from app.services import edits, jobs
from app.services import openai_compat as service
from app.services.generate import GENERATE
from app.services.openai_compat import OpenAICompatError
from app.services.submission import Kind, Submitter, submit_job

logger = logging.getLogger(__name__)

RequestT = TypeVar("RequestT", bound=BaseModel)

# OpenAI takes up to 16 images per edit.
MAX_IMAGES = 16
# Names the model(s) that made the images of every answer.
MODEL_HEADER = "Darkroom-Model"
MULTIPART = "multipart/form-data"

_ERROR_DESCRIPTIONS = {
    400: "The request is invalid (`invalid_request_error`, naming the `param` at fault), or "
    "the model refused it.",
    401: "Missing or invalid API key (`invalid_api_key`).",
    402: "The job's estimated cost would take the tenant's spend this month past its budget "
    "(`budget_exceeded`).",
    404: "The model is not served here (`model_not_found`).",
    409: "A request with the same Idempotency-Key is in flight, or the job was canceled.",
    429: "Too many requests; retry after the time in Retry-After.",
    500: "The job failed unexpectedly.",
    504: "The job did not finish within `DARKROOM_OPENAI_COMPAT_WAIT_SECONDS` "
    "(`job_still_running`); it goes on, and the message names the job to fetch later.",
    503: "The model's vendor is overloaded or unreachable.",
}


def openai_errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` entries for these statuses, in OpenAI's error shape."""
    return {
        status: {"description": _ERROR_DESCRIPTIONS[status], "model": OpenAIError}
        for status in statuses
    }


# The 200 of every route, with the header naming the model that answered.
ANSWERED = {
    200: {
        "description": "The images, in OpenAI's ImagesResponse.",
        "headers": {
            MODEL_HEADER: {
                "description": "The model(s) that made the images (`provider/model`, "
                "comma-separated when a fallback made some of them).",
                "schema": {"type": "string"},
            }
        },
    }
}

# A body declaring more than the server's limit is refused before any route runs, as
# problem+json.
# The body size limit and the idempotency layer, shared by every route, answer problem+json.
SHARED_PROBLEMS = problems(413) | {
    422: {
        "description": "The Idempotency-Key was used with another request "
        "(`idempotency-key-reused`)."
    }
}


class OpenAIRoute(APIRoute):
    """A route whose every error, from validation to an unexpected crash, is answered in
    OpenAI's error shape instead of problem+json."""

    def get_route_handler(self) -> Callable[[Request], Awaitable[Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                return await handler(request)
            except OpenAICompatError as exc:
                error = exc
            except RequestValidationError as exc:
                sent = request.headers.get("content-type")
                error = service.from_validation(list(exc.errors()), sent)
            except DarkroomError as exc:
                error = service.from_darkroom(exc)
            except StarletteHTTPException as exc:
                error = service.from_http(exc.status_code, str(exc.detail), exc.headers)
            except Exception:
                logger.exception("unhandled error on %s %s", request.method, request.url.path)
                error = OpenAICompatError(500, "An unexpected error occurred.")
            return JSONResponse(error.body(), status_code=error.status, headers=error.headers)

        return handle


router = APIRouter(prefix="/v1/images", tags=["openai-compatible"], route_class=OpenAIRoute)


class ImagesCallServices:
    """What one OpenAI-compatible call needs: the caller's submitter and the services to answer
    with the finished job's images."""

    def __init__(
        self,
        request: Request,
        response: Response,
        session: Session,
        tenant: Tenant,
        budget: MonthlyBudget,
        settings: AppSettings,
        queue: Queue,
        context: Context,
    ) -> None:
        self.request = request
        self.response = response
        self.settings = settings
        self.submitter = Submitter(session, tenant, context, queue, budget)

    def model(self, name: str | None) -> str:
        """The Darkroom model id for OpenAI's `model` field."""
        return service.resolve_model(self.submitter.registry, name, self.settings.default_model)

    async def submit(
        self,
        kind: Kind[RequestT],
        body: RequestT,
        idempotency_key: str | None,
        response_format: str | None,
        quality: str | None,
    ) -> ImagesResponse:
        """Submit the job, wait for its end, and answer with its images."""
        job, _ = await submit_job(
            self.submitter, kind, body, idempotency_key, self.settings.openai_compat_wait_seconds
        )
        service.check_finished(job, self.settings.openai_compat_wait_seconds)
        # Read on their own, without a transaction: the request has nothing more to write.
        async with self.submitter.context.reader() as session:
            outputs = await jobs.outputs_of(session, job.id)
        self.response.headers[MODEL_HEADER] = service.answering_models(outputs)
        base_url = self.settings.public_url or str(self.request.base_url)
        return await service.images_response(
            self.submitter.storage,
            self.settings,
            job,
            outputs,
            response_format,
            quality,
            base_url,
        )

    async def store(self, parts: list[bytes], param: str) -> list[Asset]:
        """Store uploaded image parts as the tenant's assets."""
        return await service.store_parts(
            self.submitter.session,
            self.submitter.storage,
            self.submitter.tenant_id,
            parts,
            self.settings.max_image_pixels,
            param,
        )


ImagesCall = Annotated[ImagesCallServices, Depends()]


@router.post(
    "/generations",
    operation_id="create_image",
    summary="Generate images (OpenAI-compatible)",
    response_model=ImagesResponse,
    response_model_exclude_none=True,
    responses=ANSWERED
    | openai_errors(400, 401, 402, 404, 409, 429, 500, 503, 504)
    | SHARED_PROBLEMS,
)
async def create_image(
    body: ImageGenerationRequest,
    call: ImagesCall,
    idempotency_key: IdempotencyKey = None,
) -> ImagesResponse:
    """OpenAI's `images.generate`: runs a Darkroom generate job and answers when it is done.
    `model` takes Darkroom ids (`local/draft`) or bare OpenAI names (`gpt-image-2` means
    `openai/gpt-image-2` when served here, else the default model). Errors are OpenAI's error
    object rather than problem+json, so that OpenAI's clients raise their typed exceptions."""
    request = service.generate_request(body, call.model(body.model))
    return await call.submit(GENERATE, request, idempotency_key, body.response_format, body.quality)


@dataclass
class MultipartCall:
    """The parts of a multipart images call: image files by field name, and the text fields."""

    files: dict[str, list[bytes]]
    fields: dict[str, str]


async def read_multipart(request: Request, file_fields: tuple[str, ...]) -> MultipartCall:
    """The files and text fields of a multipart body. Read here, after authentication, so an
    unauthenticated caller cannot make the server parse a large upload. A body of another media
    type (JSON, say) is a 400 saying so; a file under another name, or text where a file
    belongs, is a 400 naming the field."""
    sent = request.headers.get("content-type")
    if not (sent or "").lower().startswith(MULTIPART):
        raise service.unsupported_content_type(
            f"{MULTIPART}, with the images as file parts and the other parameters as text fields",
            sent,
        )
    files: dict[str, list[bytes]] = {name: [] for name in file_fields}
    fields: dict[str, str] = {}
    async with request.form(max_files=MAX_IMAGES + 1, max_fields=32) as form:
        for name, value in form.multi_items():
            if isinstance(value, UploadFile):
                if name not in files:
                    raise OpenAICompatError(400, f"Unknown file parameter: '{name}'.", name)
                files[name].append(await value.read())
            elif name in files:
                raise OpenAICompatError(
                    400, f"'{name}' must be a file part.", name, "invalid_value"
                )
            else:
                fields[name] = value
    return MultipartCall(files, fields)


def multipart_body(fields: type[BaseModel], files: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """An OpenAPI multipart request body: these text fields and image file parts."""
    schema = fields.model_json_schema()
    text_fields = {name: _omitted_not_null(field) for name, field in schema["properties"].items()}
    properties = files | text_fields
    required = [name for name, file in files.items() if file.pop("required", False)]
    required += schema.get("required", [])
    # Like OpenAI, these routes refuse a parameter they do not know.
    content_schema = {
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": False,
    }
    return {"required": True, "content": {MULTIPART: {"schema": content_schema}}}


def _omitted_not_null(field: dict[str, Any]) -> dict[str, Any]:
    """A text field's schema without its `null` member: a form has no null, so a field left
    to its default is left out (as OpenAI's clients do), never sent as the text "null"."""
    members = [member for member in field.get("anyOf", []) if member != {"type": "null"}]
    if len(members) != 1:
        return field
    rest = {key: value for key, value in field.items() if key not in ("anyOf", "default")}
    return members[0] | rest


IMAGE_FILE = {"type": "string", "format": "binary"}
EDIT_BODY = multipart_body(
    ImageEditFields,
    {
        "image": {
            "type": "array",
            "items": IMAGE_FILE,
            "minItems": 1,
            "maxItems": MAX_IMAGES,
            "description": f"The image(s) to edit, PNG, JPEG or WebP: one part, or up to "
            f"{MAX_IMAGES} repeated parts (as `image` or `image[]`). The first is the one "
            "edited; the others are its reference images.",
            "required": True,
        },
        "mask": IMAGE_FILE
        | {
            "description": "A PNG of the first image's size whose fully transparent pixels "
            "(alpha 0) mark the area to change."
        },
    },
)
VARIATION_BODY = multipart_body(
    ImageVariationFields,
    {"image": IMAGE_FILE | {"description": "The image to vary.", "required": True}},
)


@router.post(
    "/edits",
    operation_id="create_image_edit",
    summary="Edit images (OpenAI-compatible)",
    response_model=ImagesResponse,
    response_model_exclude_none=True,
    responses=ANSWERED
    | openai_errors(400, 401, 402, 404, 409, 429, 500, 503, 504)
    | SHARED_PROBLEMS,
    openapi_extra={"requestBody": EDIT_BODY},
)
async def create_image_edit(
    request: Request, call: ImagesCall, idempotency_key: IdempotencyKey = None
) -> ImagesResponse:
    """OpenAI's `images.edit` (multipart): the images and mask are stored as your assets, then
    a Darkroom edit job runs and the call answers when it is done."""
    parts = await read_multipart(request, ("image", "image[]", "mask"))
    fields = service.parse_fields(ImageEditFields, parts.fields)
    images = parts.files["image"] + parts.files["image[]"]
    if not images:
        raise OpenAICompatError(
            400, "Missing required parameter: 'image'.", "image", "missing_required_parameter"
        )
    if len(images) > MAX_IMAGES or len(parts.files["mask"]) > 1:
        raise OpenAICompatError(
            400, f"Send at most {MAX_IMAGES} images and one mask.", "image", "invalid_value"
        )
    stored = await call.store(images, "image")
    masks = await call.store(parts.files["mask"], "mask")
    body = service.edit_request(
        fields, call.model(fields.model), [a.id for a in stored], masks[0].id if masks else None
    )
    return await call.submit(
        edits.EDIT, body, idempotency_key, fields.response_format, fields.quality
    )


@router.post(
    "/variations",
    operation_id="create_image_variation",
    summary="Make variations of an image (OpenAI-compatible)",
    response_model=ImagesResponse,
    response_model_exclude_none=True,
    responses=ANSWERED
    | openai_errors(400, 401, 402, 404, 409, 429, 500, 503, 504)
    | SHARED_PROBLEMS,
    openapi_extra={"requestBody": VARIATION_BODY},
)
async def create_image_variation(
    request: Request, call: ImagesCall, idempotency_key: IdempotencyKey = None
) -> ImagesResponse:
    """OpenAI's `images.create_variation` (multipart): the image is stored as your asset, then
    a Darkroom variants job makes `n` variants of it at its own size."""
    parts = await read_multipart(request, ("image",))
    fields = service.parse_fields(ImageVariationFields, parts.fields)
    if len(parts.files["image"]) != 1:
        raise OpenAICompatError(
            400, "Send exactly one 'image' file part.", "image", "missing_required_parameter"
        )
    (image,) = await call.store(parts.files["image"], "image")
    body = service.variants_request(fields, call.model(fields.model), image)
    return await call.submit(edits.VARIANTS, body, idempotency_key, fields.response_format, None)
