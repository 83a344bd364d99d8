"""The `fal` provider: any image model hosted on fal, through fal's queue. Model ids are
`fal/<endpoint id>` (for example `fal/fal-ai/flux/dev`). A few endpoints have their inputs in a
table here; every other id resolves too, with the input names most fal image models share and
capabilities Darkroom cannot know.

The protocol as fal documents it, read 2026-11-28:
- docs.fal.ai/model-endpoints/queue and docs.fal.ai/documentation/model-apis/inference/queue:
  `POST https://queue.fal.run/{endpoint id}` with `Authorization: Key <key>` and the model input
  as the JSON body; the answer names `request_id, status_url, response_url, cancel_url` (status
  and response URLs drop an endpoint's sub-path); `GET status_url` answers `IN_QUEUE` (with
  `queue_position`), `IN_PROGRESS` or `COMPLETED`; then `GET response_url` is the model's output;
  `PUT cancel_url` cancels a request that has not started.
- fal-client (projects/fal_client/src/fal_client/client.py in fal-ai/fal): the same URLs, the
  `Key` authorization scheme, status parsing, and errors read from `detail`.
- docs.fal.ai/errors ("Model Errors") and docs.fal.ai/documentation/model-apis/request-errors:
  model errors are `{"detail": [{loc, msg, type, url, ctx}]}` (422 for invalid input, type
  `content_policy_violation` for a safety refusal); request errors are `{"detail": "...",
  "error_type": "..."}`; the optional `X-Fal-Retryable` header says whether the same request may
  succeed. An account out of credit is answered 403 "User is locked. Reason: Exhausted balance"
  (as reported in fal-ai/fal issues #1112, #1147).
- Model pages (fal.ai/docs/model-api-reference/...): fal-ai/flux/dev and fal-ai/flux/schnell
  (`image_size` as {width, height}, `seed`, `num_images`, `output_format` jpeg/png, output
  `images[{url, width, height, content_type}]`, `seed`, `has_nsfw_concepts`), fal-ai/flux-pro/
  v1.1 (the same inputs), fal-ai/flux-pro/kontext (`image_url`, a data URI allowed) and
  fal-ai/flux-pro/kontext/text-to-image (`aspect_ratio` from 21:9 to 9:21).

Cost: fal bills per image or per megapixel by model and reports neither in the answer, so the
cost of a fal image is recorded as unknown.
"""

import re
from dataclasses import dataclass
from typing import Any

import httpx

from app.errors import (
    InvalidForModel,
    ModerationBlocked,
    ProviderError,
    ProviderMalformedResponse,
    ProviderQuotaExhausted,
)
from app.providers.base import (
    EditCall,
    GenerateCall,
    GenerateResult,
    InputImage,
    ModelCapabilities,
    ModelSpec,
)
from app.providers.http_vendor import HTTPVendor
from app.providers.polling import (
    check_same_site,
    data_uri,
    detail_message,
    fetch_result_image,
    nearest_ratio,
    poll_until_done,
)
from app.providers.transport import error_for_status

PROVIDER = "fal"

# An endpoint id: an owner and at least one more path segment.
ENDPOINT_ID = re.compile(r"[a-z0-9][a-z0-9_.-]*(/[a-z0-9][a-z0-9_.-]*)+", re.IGNORECASE)

RUNNING_STATUSES = {"IN_QUEUE", "IN_PROGRESS"}

PRICING = (
    "Billed per image or per megapixel, by endpoint; fal's answers carry no price, so each "
    "job's cost is null."
)

KONTEXT_RATIOS = ("21:9", "16:9", "4:3", "3:2", "1:1", "2:3", "3:4", "9:16", "9:21")


@dataclass(frozen=True)
class FalModel:
    """An endpoint whose inputs Darkroom knows: how it takes a size (`image_size`: an object
    with width and height; `ratio`: the nearest of `ratios`; `none`: it matches its input
    image), the input that takes an image to edit, and whether it can make an image from text
    alone."""

    name: str
    description: str
    sizing: str
    ratios: tuple[str, ...] = ()
    edit_input: str | None = None
    generates: bool = True
    output_format: str | None = "png"
    min_side: int = 256
    max_side: int = 2048


KNOWN_MODELS = (
    FalModel("fal-ai/flux/dev", "FLUX.1 [dev] on fal, at the requested size.", "image_size"),
    FalModel("fal-ai/flux/schnell", "FLUX.1 [schnell] on fal: fastest FLUX.", "image_size"),
    FalModel("fal-ai/flux-pro/v1.1", "FLUX1.1 [pro] on fal, at the requested size.", "image_size"),
    FalModel(
        "fal-ai/flux-pro/kontext",
        "FLUX.1 Kontext [pro] on fal: edits an image by instruction.",
        "none",
        edit_input="image_url",
        generates=False,
    ),
    FalModel(
        "fal-ai/flux-pro/kontext/text-to-image",
        "FLUX.1 Kontext [pro] on fal, text to image by aspect ratio.",
        "ratio",
        ratios=KONTEXT_RATIOS,
    ),
)
KNOWN_BY_NAME = {model.name: model for model in KNOWN_MODELS}

# Unknown endpoints: the input names most fal image models share.
GENERIC = FalModel("", "", "image_size", edit_input="image_url", output_format=None, min_side=64)


def spec_for(model: FalModel, name: str, description: str) -> ModelSpec:
    """The catalog entry for an endpoint under the name it was asked by."""
    modes = (("generate",) if model.generates else ()) + (("edit",) if model.edit_input else ())
    return ModelSpec(
        provider=PROVIDER,
        name=name,
        description=description,
        capabilities=ModelCapabilities(
            modes=modes,
            min_side=model.min_side,
            max_side=model.max_side,
            seed=True,
            negative_prompt=False,
            mask=False,
            max_references=0,
        ),
        price_per_image_usd=None,
    )


MODELS = [spec_for(model, model.name, model.description) for model in KNOWN_MODELS]


def error_types(response: httpx.Response) -> set[str]:
    """The machine-readable `type`s of a model error, or the `error_type` of a request error."""
    try:
        body = response.json()
    except ValueError:
        return set()
    if not isinstance(body, dict):
        return set()
    detail = body.get("detail")
    types = (
        {str(item.get("type")) for item in detail if isinstance(item, dict)}
        if isinstance(detail, list)
        else set()
    )
    if body.get("error_type"):
        types.add(str(body["error_type"]))
    return types


class FalProvider(HTTPVendor):
    """Image models hosted on fal, available when an API key is configured."""

    name = PROVIDER
    key_label = "fal API key"
    enabled_by = "DARKROOM_FAL_API_KEY"
    default_base_url = "https://queue.fal.run"
    pricing = PRICING

    def auth_headers(self, api_key: str) -> dict[str, str]:
        """fal takes the key under its own `Key` scheme."""
        return {"Authorization": f"Key {api_key}"}

    def read_error(self, response: httpx.Response) -> ProviderError:
        """The typed failure for a non-2xx fal answer: a safety refusal or a locked account by
        their body, then the status, overridden by `X-Fal-Retryable` when fal sends it."""
        status = response.status_code
        message = detail_message(response)
        extensions = {"provider": PROVIDER, "provider_status": status}
        if "content_policy_violation" in error_types(response):
            return ModerationBlocked(f"fal's content checker: {message}", **extensions)
        if status == 403 and "exhausted balance" in message.lower():
            return ProviderQuotaExhausted(f"fal: {message}", **extensions)
        hint = response.headers.get("x-fal-retryable", "").lower()
        retryable = {"true": True, "false": False}.get(hint)
        return error_for_status(PROVIDER, status, message, retryable=retryable)

    def models(self) -> list[ModelSpec]:
        """The endpoints whose inputs this adapter knows; any other id resolves by
        model_spec."""
        return list(MODELS)

    def model_spec(self, name: str) -> ModelSpec | None:
        """The spec for any endpoint id: a known endpoint's, or a generic one."""
        known = KNOWN_BY_NAME.get(name)
        if known is not None:
            return spec_for(known, name, known.description)
        if not ENDPOINT_ID.fullmatch(name):
            return None
        description = (
            f"{name} on fal. Darkroom does not know this endpoint's inputs or limits: it sends "
            "prompt, image_size, seed and num_images (and `image_url` for edits)."
        )
        return spec_for(GENERIC, name, description)

    async def generate(self, call: GenerateCall) -> GenerateResult:
        """One image from the prompt; the size goes in the way the endpoint takes it."""
        model = self._model(call.model)
        if not model.generates:
            raise InvalidForModel(f"fal/{call.model} only edits images.", provider=PROVIDER)
        fields = model_input(model, call.prompt, call.seed, call.width, call.height)
        return await self._run(call.model, fields)

    async def edit(self, call: EditCall) -> GenerateResult:
        """An edit of the source image, sent as a data URI in the endpoint's image input."""
        model = self._model(call.model)
        if model.edit_input is None:
            raise InvalidForModel(f"fal/{call.model} cannot edit images.", provider=PROVIDER)
        if call.mask is not None or call.references:
            raise InvalidForModel(
                f"fal/{call.model} takes neither a mask nor references here.", provider=PROVIDER
            )
        fields = model_input(model, call.prompt, call.seed, call.width, call.height, call.image)
        return await self._run(call.model, fields)

    def _model(self, name: str) -> FalModel:
        self.check_configured()
        if self.model_spec(name) is None:
            raise InvalidForModel(f"{name!r} is not a fal endpoint id.", provider=PROVIDER)
        return KNOWN_BY_NAME.get(name, GENERIC)

    async def _run(self, name: str, fields: dict[str, Any]) -> GenerateResult:
        """Queue the request, poll its status until COMPLETED, read the output, download the
        first image."""
        queued = await self._http.request_json("POST", name, json=fields)
        if not isinstance(queued, dict) or not queued.get("request_id"):
            raise ProviderMalformedResponse("fal's answer names no request.", provider=PROVIDER)
        request_id = str(queued["request_id"])
        status_url = check_same_site(self._http, queued.get("status_url"), "status URL")
        response_url = check_same_site(self._http, queued.get("response_url"), "response URL")

        async def check() -> bool | None:
            status = await self._http.request_json("GET", status_url)
            return read_status(status, request_id)

        async def cancel() -> None:
            url = check_same_site(self._http, queued.get("cancel_url"), "cancel URL")
            await self._http.request("PUT", url)

        await poll_until_done(
            check,
            vendor=PROVIDER,
            deadline_seconds=self._http.timeout_seconds,
            interval_seconds=self._http.poll_interval_seconds,
            on_deadline=cancel,
            provider_request_id=request_id,
        )
        output = await self._http.request_json("GET", response_url)
        image, data = await fetch_result_image(self._http, first_image_url(output, request_id))
        details: dict[str, Any] = {"provider_request_id": request_id}
        if isinstance(output.get("seed"), int):
            details["provider_seed"] = output["seed"]
        return GenerateResult(image=image, cost_usd=None, details=details, encoded=data)


def model_input(
    model: FalModel,
    prompt: str,
    seed: int,
    width: int,
    height: int,
    image: InputImage | None = None,
) -> dict[str, Any]:
    """The request body for `model`: prompt, seed, one image, its size the way the endpoint
    takes it, the output format, and the source image for an edit."""
    fields: dict[str, Any] = {"prompt": prompt, "seed": seed, "num_images": 1}
    if model.output_format:
        fields["output_format"] = model.output_format
    if image is not None and model.edit_input:
        fields[model.edit_input] = data_uri(image, PROVIDER)
    if model.sizing == "image_size":
        fields["image_size"] = {"width": width, "height": height}
    elif model.sizing == "ratio":
        fields["aspect_ratio"] = nearest_ratio(width, height, model.ratios)
    return fields


def read_status(status: object, request_id: str) -> bool | None:
    """True once the request is COMPLETED, None while queued or running."""
    if not isinstance(status, dict):
        raise ProviderMalformedResponse("fal's status answer is not an object.", provider=PROVIDER)
    value = status.get("status")
    if value in RUNNING_STATUSES:
        return None
    if value == "COMPLETED":
        return True
    raise ProviderMalformedResponse(
        f"fal answered with an unknown status {str(value)[:40]!r}.",
        provider=PROVIDER,
        provider_request_id=request_id,
    )


def first_image_url(output: object, request_id: str) -> object:
    """The URL of the first image in a model output; ModerationBlocked when the model's safety
    checker flagged it."""
    extensions = {"provider": PROVIDER, "provider_request_id": request_id}
    if not isinstance(output, dict):
        raise ProviderMalformedResponse("fal's output is not an object.", **extensions)
    flags = output.get("has_nsfw_concepts")
    if isinstance(flags, list) and any(flag is True for flag in flags):
        raise ModerationBlocked("fal's safety checker flagged the generated image.", **extensions)
    images = output.get("images")
    first = images[0] if isinstance(images, list) and images else None
    return first.get("url") if isinstance(first, dict) else None
