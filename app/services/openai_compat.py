"""OpenAI's Images API over Darkroom's jobs: map an OpenAI request onto a Darkroom request,
run the job to its end within the wait cap, and answer in OpenAI's shapes, errors included."""

from dataclasses import dataclass, field
from typing import Any, TypeVar

import pybase64
from pydantic import BaseModel, ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.errors import (
    JSON_MEDIA_TYPE,
    DarkroomError,
    ModelUnavailable,
    body_not_json,
    validation_message,
    wrong_media_type,
)
from app.models import Asset, Job, JobStatus
from app.providers.registry import ProviderRegistry
from app.schemas.edit import EditRequest, ImageInput, ReferenceInput, VariantSource, VariantsRequest
from app.schemas.generate import GenerateRequest
from app.schemas.openai_compat import (
    ImageData,
    ImageEditFields,
    ImageGenerationRequest,
    ImagesResponse,
    ImageUsage,
    ImageVariationFields,
    OpenAIErrorBody,
    UsageInputTokensDetails,
    UsageOutputTokensDetails,
)
from app.services import signing
from app.services.assets import create_upload
from app.storage import Storage

# OpenAI's `type` for each status it answers with; others are `invalid_request_error` (4xx)
# or `server_error` (5xx).
ERROR_TYPES = {429: "rate_limit_error"}
# The Darkroom problem slugs whose OpenAI `code` differs from the slug with underscores.
ERROR_CODES = {"unauthorized": "invalid_api_key", "model-unavailable": "model_not_found"}
# Statuses the `openai` client retries by default. A retry of these routes would run the
# work again, so every error but overload and rate limits says not to (`x-should-retry`).
RETRYABLE_STATUSES = {429, 503}
# The qualities OpenAI reports of those a request can ask for (not auto, standard or hd).
REPORTED_QUALITIES = {"low", "medium", "high"}
# OpenAI's `quality` as Darkroom's tier; `standard` and `hd` are DALL·E's, still accepted by
# OpenAI's types. Darkroom has no tier above `high`.
QUALITY_TIERS = {
    "low": "draft",
    "medium": "standard",
    "high": "high",
    "auto": "auto",
    "standard": "standard",
    "hd": "high",
}
URL_LIFETIME_SECONDS = 3600

Fields = TypeVar("Fields", bound=BaseModel)


@dataclass(eq=False)
class OpenAICompatError(Exception):
    """An error answered in OpenAI's shape `{"error": {message, type, param, code}}`."""

    status: int
    message: str
    param: str | None = None
    code: str | None = None
    type: str = ""
    headers: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__init__(self.message)
        if not self.type:
            default = "invalid_request_error" if self.status < 500 else "server_error"
            self.type = ERROR_TYPES.get(self.status, default)
        if self.status not in RETRYABLE_STATUSES:
            self.headers.setdefault("x-should-retry", "false")

    def body(self) -> dict[str, Any]:
        """The JSON body OpenAI's clients parse."""
        error = OpenAIErrorBody(
            message=self.message, type=self.type, param=self.param, code=self.code
        )
        return {"error": error.model_dump()}


def from_darkroom(exc: DarkroomError) -> OpenAICompatError:
    """A Darkroom error in OpenAI's terms: a model that is not served here is 404
    `model_not_found`; invalid input and unreadable images are 400, as OpenAI answers them;
    other statuses (401, 404, 409, 413, 429, 5xx) are kept."""
    status = exc.status
    param = exc.extensions.get("field")
    if isinstance(exc, ModelUnavailable):
        status, param = 404, "model"
    elif status in (415, 422):
        status = 400
    code = ERROR_CODES.get(exc.slug, exc.slug.replace("-", "_"))
    return OpenAICompatError(status, exc.detail, param, code, headers=dict(exc.headers))


def from_validation(errors: list[Any], content_type: str | None = None) -> OpenAICompatError:
    """The first of pydantic's or FastAPI's validation errors as a 400, naming the field; a
    body FastAPI left unparsed, sent with `content_type`, as one of another media type."""
    if body_not_json(errors):
        return unsupported_content_type(JSON_MEDIA_TYPE, content_type)
    first = errors[0] if errors else {}
    if first.get("type") == "json_invalid":
        return OpenAICompatError(400, "The request body is not valid JSON.", code="invalid_json")
    location = [str(part) for part in first.get("loc", ()) if part != "body"]
    param = ".".join(location) or None
    if first.get("type") == "missing":
        return OpenAICompatError(
            400, f"Missing required parameter: '{param}'.", param, "missing_required_parameter"
        )
    if first.get("type") == "extra_forbidden":
        return OpenAICompatError(400, f"Unknown parameter: '{param}'.", param, "unknown_parameter")
    message = validation_message(first)
    if param:
        message = f"Invalid value for '{param}': {message}"
    return OpenAICompatError(400, message, param, "invalid_value")


def unsupported_content_type(expected: str, sent: str | None) -> OpenAICompatError:
    """A body sent as `sent` to a route that takes `expected`, as OpenAI answers it."""
    return OpenAICompatError(400, wrong_media_type(expected, sent), code="unsupported_content_type")


def from_http(status: int, detail: str, headers: dict[str, str] | None) -> OpenAICompatError:
    """A Starlette HTTP error (a malformed body, a too-large one) in OpenAI's shape."""
    return OpenAICompatError(status, detail, headers=dict(headers or {}))


def parse_fields(model: type[Fields], fields: dict[str, str]) -> Fields:
    """Multipart text fields validated as `model`; a 400 naming the first bad field."""
    try:
        return model.model_validate(fields)
    except ValidationError as exc:
        raise from_validation(exc.errors()) from None


def resolve_model(registry: ProviderRegistry, name: str | None, default_model: str) -> str:
    """The Darkroom model id for OpenAI's `model`: the default model when omitted, a
    `provider/model` id as given, a bare OpenAI name as `openai/<name>`. A name that is not
    served here is refused (404 `model_not_found`), never answered by another model."""
    if not name:
        return default_model
    model_id = name if "/" in name else f"openai/{name}"
    try:
        registry.resolve(model_id)
    except ModelUnavailable as exc:
        if model_id != name:
            exc.detail = f"The model {name!r} ({model_id}) is not served here: {exc.detail}"
        raise
    return model_id


def quality_tier(quality: str | None) -> str:
    """Darkroom's quality tier for OpenAI's `quality` (the levels above `high` are not in the
    request schema: a 400 naming `quality`)."""
    return QUALITY_TIERS[quality or "auto"]


def render_fields(body: ImageGenerationRequest | ImageEditFields) -> dict[str, Any]:
    """OpenAI's quality, background, output_compression and moderation as Darkroom's request
    fields, passed on to the model (what a model cannot honour is refused by Darkroom's own
    checks, a transparent background on a model without one included)."""
    return {
        "quality": quality_tier(body.quality),
        "background": body.background or "auto",
        "output_compression": body.output_compression,
        "moderation": body.moderation or "auto",
    }


def caller_metadata(user: str | None, safety_identifier: str | None) -> dict[str, Any] | None:
    """The job metadata that records the end user the caller named, if any."""
    who = safety_identifier or user
    return {"user": who} if who else None


def generate_request(body: ImageGenerationRequest, model: str) -> GenerateRequest:
    """Darkroom's generate request for an OpenAI generation request."""
    try:
        return GenerateRequest(
            prompt=body.prompt,
            model=model,
            n=body.n or 1,
            size=None if body.size in (None, "auto") else body.size,
            output_format=body.output_format or "png",
            metadata=caller_metadata(body.user, body.safety_identifier),
            **render_fields(body),
        )
    except ValidationError as exc:
        raise from_validation(exc.errors()) from None


def edit_request(
    fields: ImageEditFields, model: str, images: list[str], mask: str | None
) -> EditRequest:
    """Darkroom's edit request for an OpenAI edit of stored assets: the first image is the one
    edited (and the one the mask applies to), the others are its reference images."""
    try:
        return EditRequest(
            image=ImageInput(asset_id=images[0]),
            mask=ImageInput(asset_id=mask) if mask else None,
            references=[ReferenceInput(image=ImageInput(asset_id=image)) for image in images[1:]],
            prompt=fields.prompt,
            model=model,
            n=fields.n or 1,
            size=None if fields.size in (None, "auto") else fields.size,
            output_format=fields.output_format or "png",
            metadata=caller_metadata(fields.user, fields.safety_identifier),
            **render_fields(fields),
        )
    except ValidationError as exc:
        raise from_validation(exc.errors()) from None


def variants_request(fields: ImageVariationFields, model: str, image: Asset) -> VariantsRequest:
    """Darkroom's variants request for an OpenAI variation of a stored asset. Variants keep
    the image's size, so `size` may only be `auto` or that size."""
    if fields.size not in (None, "auto") and fields.size != f"{image.width}x{image.height}":
        raise OpenAICompatError(
            400,
            f"Variations keep the image's size ({image.width}x{image.height}); send that size "
            "or `auto`.",
            "size",
            "invalid_value",
        )
    try:
        return VariantsRequest(
            source=VariantSource(asset_id=image.id),
            models=[model],
            n=fields.n or 1,
            metadata=caller_metadata(fields.user, None),
        )
    except ValidationError as exc:
        raise from_validation(exc.errors()) from None


async def store_parts(
    session: AsyncSession,
    storage: Storage,
    tenant_id: str,
    parts: list[bytes],
    max_pixels: int,
    param: str,
) -> list[Asset]:
    """Validate uploaded image parts and store them as the tenant's `upload` assets; a part
    that is not a usable image is a 400 naming `param`."""
    stored = []
    for data in parts:
        try:
            stored.append(await create_upload(session, storage, tenant_id, data, max_pixels))
        except DarkroomError as exc:
            exc.extensions.setdefault("field", param)
            raise
    return stored


def check_finished(job: Job, seconds: float) -> None:
    """Nothing for a job that succeeded; an OpenAI-shaped error if it failed, was canceled, or
    was still running after `seconds`."""
    if job.status == JobStatus.SUCCEEDED:
        return
    if job.status == JobStatus.FAILED:
        raise failed_job_error(job)
    if job.status == JobStatus.CANCELED:
        raise OpenAICompatError(409, f"Job {job.id} was canceled.", code="job_canceled")
    raise OpenAICompatError(
        504,
        f"Job {job.id} is still {job.status} after {seconds:g} seconds; it goes on, and "
        f"GET /v1/jobs/{job.id} returns it with its images when done.",
        code="job_still_running",
    )


def failed_job_error(job: Job) -> OpenAICompatError:
    """Why a job failed, from its problem object: the vendor refusing the request (moderation,
    a parameter) is 400, the vendor failing is 5xx."""
    problem = job.error or {}
    status = int(problem.get("status", 500))
    slug = str(problem.get("type", "")).rsplit("/", 1)[-1] or "internal-error"
    message = f"Job {job.id} failed: {problem.get('detail', 'unknown error')}"
    if status < 500:
        return OpenAICompatError(400, message, code=slug.replace("-", "_"))
    return OpenAICompatError(status, message, code=slug.replace("-", "_"))


def answering_models(outputs: list[Asset]) -> str:
    """The models that made a job's outputs, in order of first use, for the `Darkroom-Model`
    header: a caller always learns which model answered (a fallback included)."""
    models = [str((asset.details or {}).get("model", "")) for asset in outputs]
    return ", ".join(dict.fromkeys(model for model in models if model))


async def images_response(
    storage: Storage,
    settings: Settings,
    job: Job,
    outputs: list[Asset],
    response_format: str | None,
    quality: str | None,
    base_url: str,
) -> ImagesResponse:
    """The ImagesResponse for a succeeded job's outputs, in order, as base64, or as signed
    URLs that work without an API key for an hour (as OpenAI's do)."""
    expires_at = signing.expiry(URL_LIFETIME_SECONDS)
    data = []
    for asset in outputs:
        revised_prompt = (asset.details or {}).get("revised_prompt") or planned_prompt(job)
        if response_format == "url":
            url = signing.signed_content_url(settings, asset.id, expires_at, base_url)
            data.append(ImageData(url=url, revised_prompt=revised_prompt))
        else:
            encoded = pybase64.b64encode(await storage.get(asset.storage_key)).decode()
            data.append(ImageData(b64_json=encoded, revised_prompt=revised_prompt))
    first = outputs[0] if outputs else None
    finished = job.finished_at or job.created_at
    return ImagesResponse(
        created=int(finished.timestamp()),
        data=data,
        background="transparent" if job.request.get("background") == "transparent" else "opaque",
        output_format=first.format if first else None,  # type: ignore[arg-type]
        quality=quality if quality in REPORTED_QUALITIES else None,  # type: ignore[arg-type]
        size=f"{first.width}x{first.height}" if first else None,
        usage=total_usage(outputs),
    )


def planned_prompt(job: Job) -> str | None:
    """The prompt the model was given, when Darkroom's prompt optimizer rewrote the brief."""
    prompt, brief = job.request.get("prompt"), job.request.get("brief")
    return prompt if prompt and brief is not None and prompt != brief else None


def total_usage(outputs: list[Asset]) -> ImageUsage | None:
    """The token usage of all outputs, when every one of them has OpenAI-style usage: its own,
    or (made with others in one call) the call's, recorded with the call's first image."""
    details = [asset.details or {} for asset in outputs]
    usages = [detail["usage"] for detail in details if "usage" in detail]
    covered = all("usage" in detail or detail.get("images_in_call") for detail in details)
    if not usages or not covered or not all(isinstance(usage, dict) for usage in usages):
        return None
    try:
        parsed = [ImageUsage.model_validate(usage) for usage in usages]
    except ValidationError:
        return None
    outputs_by_kind = [u.output_tokens_details for u in parsed]
    return ImageUsage(
        input_tokens=sum(u.input_tokens for u in parsed),
        input_tokens_details=UsageInputTokensDetails(
            image_tokens=sum(u.input_tokens_details.image_tokens for u in parsed),
            text_tokens=sum(u.input_tokens_details.text_tokens for u in parsed),
        ),
        output_tokens=sum(u.output_tokens for u in parsed),
        total_tokens=sum(u.total_tokens for u in parsed),
        output_tokens_details=UsageOutputTokensDetails(
            image_tokens=sum(d.image_tokens for d in outputs_by_kind if d),
            text_tokens=sum(d.text_tokens for d in outputs_by_kind if d),
        )
        if all(outputs_by_kind)
        else None,
    )
