"""The `bfl` provider: Black Forest Labs' FLUX models over the BFL API. A generation is
submitted, its returned polling URL is polled until it is Ready or refused, and the sample image
it names is downloaded at once (delivery URLs expire).

The protocol as BFL documents it, read 2026-11-28:
- API reference (OpenAPI of api.bfl.ai): `POST /v1/{model}` with the key in header `x-key` and a
  JSON body; the answer is `{id, polling_url, cost, input_mp, output_mp}` (cost in credits);
  `GET /v1/get_result?id=` answers `{id, status, result, progress, details}`. Model pages:
  docs.bfl.ai/api-reference/models/... for flux-pro-1.1 and flux-dev (width/height 256 to 1440,
  multiples of 32), flux-pro-1.1-ultra and flux-kontext-pro/-max (`aspect_ratio` between 21:9
  and 9:21, Kontext takes `input_image` plus up to three more), flux-2-pro and flux-2-flex
  (width/height from 64, `input_image` to `input_image_8`); output_format jpeg or png.
- docs.bfl.ai/api_integration/integration_guidelines and help.bfl.ai "Which API endpoint should I
  use?": always poll the returned `polling_url` (it names the region that took the request);
  `result.sample` URLs expire after 10 minutes.
- docs.bfl.ai/api_integration/errors: HTTP 402 out of credits, 403 key refused, 422 invalid
  body, 429 too many requests, 500/503; poll statuses Ready, Pending, Request Moderated,
  Content Moderated, Task not found, Error.
- docs.bfl.ml/quick_start/pricing: 1 credit is $0.01, and the per-image prices below.
"""

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
    ModelCapabilities,
    ModelSpec,
)
from app.providers.http_vendor import HTTPVendor
from app.providers.polling import (
    base64_image,
    check_same_site,
    detail_message,
    fetch_result_image,
    poll_until_done,
    reduced_ratio,
    snap,
)
from app.providers.transport import error_for_status

PROVIDER = "bfl"
LABEL = "Black Forest Labs"

# BFL bills in credits; the submit answer's `cost` is in these.
USD_PER_CREDIT = 0.01

# The widest and tallest aspect ratios the ratio-sized models take.
WIDEST_RATIO = 21 / 9

MODERATED_STATUSES = {"Request Moderated", "Content Moderated"}

PRICING = (
    "Billed in credits (1 credit = $0.01). Each job's cost is the credits BFL reports for the "
    "request; failing that, the list price per image read 2026-11-28 where the model has a flat "
    "one (FLUX.2 is billed per megapixel)."
)


@dataclass(frozen=True)
class FluxModel:
    """One FLUX endpoint: how it takes a size (`pixels`: width and height snapped to `step`;
    `ratio`: an aspect ratio, the vendor picks the pixels), how many input images an edit may
    send (0: no edits), and its list price per image where it has a flat one."""

    name: str
    description: str
    sizing: str
    min_side: int = 256
    max_side: int = 1440
    step: int = 32
    input_images: int = 0
    price_per_image_usd: float | None = None
    # Quality tier -> inference `steps`, for the models that take them (`auto`: the default).
    steps: tuple[tuple[str, int], ...] = ()

    def quality_fields(self, quality: str) -> dict[str, int]:
        """`steps` for the quality asked for, where the model takes them."""
        steps = dict(self.steps).get(quality)
        return {} if steps is None else {"steps": steps}


# Prices from docs.bfl.ml/quick_start/pricing (2026-11-28). flux-dev has no price there, and the
# FLUX.2 models are billed per megapixel, so theirs comes from each answer's `cost` instead.
FLUX_MODELS = (
    FluxModel(
        "flux-pro-1.1",
        "FLUX1.1 [pro]: fast, high-quality text to image.",
        "pixels",
        price_per_image_usd=0.04,
    ),
    FluxModel(
        "flux-pro-1.1-ultra",
        "FLUX1.1 [pro] Ultra: about 4 megapixels, by aspect ratio.",
        "ratio",
        min_side=256,
        max_side=4096,
        price_per_image_usd=0.06,
    ),
    FluxModel(
        "flux-dev",
        "FLUX.1 [dev]: the open-weights guidance-distilled model.",
        "pixels",
        steps=(("draft", 12), ("standard", 28), ("high", 50)),
    ),
    FluxModel(
        "flux-kontext-pro",
        "FLUX.1 Kontext [pro]: edits by instruction, or text to image.",
        "ratio",
        input_images=4,
        price_per_image_usd=0.04,
    ),
    FluxModel(
        "flux-kontext-max",
        "FLUX.1 Kontext [max]: Kontext at the highest quality.",
        "ratio",
        input_images=4,
        price_per_image_usd=0.08,
    ),
    FluxModel(
        "flux-2-pro",
        "FLUX.2 [pro]: generation and multi-reference editing.",
        "pixels",
        min_side=64,
        max_side=2048,
        step=16,
        input_images=8,
    ),
    FluxModel(
        "flux-2-flex",
        "FLUX.2 [flex]: FLUX.2 with control over steps and guidance.",
        "pixels",
        min_side=64,
        max_side=2048,
        step=16,
        input_images=8,
        steps=(("draft", 20), ("standard", 35), ("high", 50)),
    ),
)
MODELS_BY_NAME = {model.name: model for model in FLUX_MODELS}


def spec_for(model: FluxModel) -> ModelSpec:
    """The catalog entry of a FLUX endpoint."""
    modes = ("generate", "edit") if model.input_images else ("generate",)
    return ModelSpec(
        provider=PROVIDER,
        name=model.name,
        description=model.description,
        capabilities=ModelCapabilities(
            modes=modes,
            min_side=model.min_side,
            max_side=model.max_side,
            seed=True,
            negative_prompt=False,
            mask=False,
            max_references=max(model.input_images - 1, 0),
            max_n=10,
            quality_levels=quality_levels(model),
        ),
        price_per_image_usd=model.price_per_image_usd,
    )


def quality_levels(model: FluxModel) -> tuple[tuple[str, str], ...]:
    """What each quality tier becomes on a model that takes `steps`: that many steps, and for
    `auto` BFL's default."""
    if not model.steps:
        return ()
    return (*((tier, f"{steps} steps") for tier, steps in model.steps), ("auto", "BFL's default"))


MODELS = [spec_for(model) for model in FLUX_MODELS]


class BFLProvider(HTTPVendor):
    """FLUX models from Black Forest Labs, available when an API key is configured."""

    name = PROVIDER
    key_label = "Black Forest Labs API key"
    enabled_by = "DARKROOM_BFL_API_KEY"
    default_base_url = "https://api.bfl.ai"
    pricing = PRICING

    def auth_headers(self, api_key: str) -> dict[str, str]:
        """BFL takes the key in `x-key`."""
        return {"x-key": api_key, "accept": "application/json"}

    def read_error(self, response: httpx.Response) -> ProviderError:
        """The typed failure for a non-2xx BFL answer; the status decides, the body explains."""
        status = response.status_code
        if status == 402:
            return ProviderQuotaExhausted(
                "Black Forest Labs: the account has insufficient credits (HTTP 402).",
                provider=PROVIDER,
                provider_status=status,
            )
        return error_for_status(PROVIDER, status, detail_message(response), label=LABEL)

    def models(self) -> list[ModelSpec]:
        """The FLUX endpoints this adapter knows."""
        return list(MODELS)

    async def generate(self, call: GenerateCall) -> GenerateResult:
        """One image from the prompt at the call's size (or its aspect ratio, for the models
        that take only that). BFL takes no negative prompt."""
        model = self._model(call.model)
        body = {"prompt": call.prompt, "seed": call.seed, "output_format": "png"}
        body |= model.quality_fields(call.render.quality)
        return await self._run(model, body | size_fields(model, call.width, call.height))

    async def edit(self, call: EditCall) -> GenerateResult:
        """An instruction edit of the source image (Kontext, FLUX.2), with the references as
        further input images. No mask: these models edit by instruction alone."""
        model = self._model(call.model)
        if not model.input_images:
            raise InvalidForModel(f"bfl/{model.name} cannot edit images.", provider=PROVIDER)
        if call.mask is not None:
            raise InvalidForModel(
                f"bfl/{model.name} edits by instruction and takes no mask.", provider=PROVIDER
            )
        images = [call.image, *(reference.image for reference in call.references)]
        if len(images) > model.input_images:
            raise InvalidForModel(
                f"bfl/{model.name} takes at most {model.input_images - 1} reference images.",
                provider=PROVIDER,
            )
        body = {"prompt": call.prompt, "seed": call.seed, "output_format": "png"}
        body |= model.quality_fields(call.render.quality)
        for position, image in enumerate(images, start=1):
            body["input_image" if position == 1 else f"input_image_{position}"] = base64_image(
                image
            )
        return await self._run(model, body | size_fields(model, call.width, call.height))

    def _model(self, name: str) -> FluxModel:
        self.check_configured()
        model = MODELS_BY_NAME.get(name)
        if model is None:
            raise InvalidForModel(f"bfl has no model {name!r}.", provider=PROVIDER)
        return model

    async def _run(self, model: FluxModel, body: dict[str, Any]) -> GenerateResult:
        """Submit, poll the returned URL until a final status, download the sample."""
        submitted = await self._http.request_json("POST", f"v1/{model.name}", json=body)
        if not isinstance(submitted, dict) or not isinstance(submitted.get("id"), str):
            raise ProviderMalformedResponse(
                "Black Forest Labs' answer has no task id.", provider=PROVIDER
            )
        task_id = submitted["id"]
        polling_url = check_same_site(self._http, submitted.get("polling_url"), "polling URL")

        async def check() -> dict[str, Any] | None:
            answer = await self._http.request_json("GET", polling_url)
            return read_poll(answer, task_id)

        result = await poll_until_done(
            check,
            vendor=PROVIDER,
            deadline_seconds=self._http.timeout_seconds,
            interval_seconds=self._http.poll_interval_seconds,
            provider_request_id=task_id,
        )
        image, data = await fetch_result_image(self._http, result.get("sample"))
        details: dict[str, Any] = {"provider_request_id": task_id}
        if isinstance(result.get("seed"), int):
            details["provider_seed"] = result["seed"]
        cost = cost_of(model, submitted)
        return GenerateResult(image=image, cost_usd=cost, details=details, encoded=data)


def size_fields(model: FluxModel, width: int, height: int) -> dict[str, Any]:
    """The size as the model takes it: width and height on its grid, or an aspect ratio."""
    if model.sizing == "pixels":
        return {
            "width": snap(width, model.step, model.min_side, model.max_side),
            "height": snap(height, model.step, model.min_side, model.max_side),
        }
    return {"aspect_ratio": aspect_ratio(width, height)}


def aspect_ratio(width: int, height: int) -> str:
    """`W:H` in lowest terms, held within the 21:9 to 9:21 the ratio-sized models take."""
    ratio = width / height
    if ratio > WIDEST_RATIO:
        return "21:9"
    if ratio < 1 / WIDEST_RATIO:
        return "9:21"
    ratio_width, ratio_height = reduced_ratio(width, height)
    return f"{ratio_width}:{ratio_height}"


def read_poll(answer: object, task_id: str) -> dict[str, Any] | None:
    """The `result` of a Ready task, None while Pending; raises for every other status."""
    if not isinstance(answer, dict):
        raise ProviderMalformedResponse(
            "Black Forest Labs' poll answer is not an object.", provider=PROVIDER
        )
    status = answer.get("status")
    extensions = {"provider": PROVIDER, "provider_request_id": task_id}
    if status == "Pending":
        return None
    if status == "Ready":
        result = answer.get("result")
        if not isinstance(result, dict):
            raise ProviderMalformedResponse(
                "Black Forest Labs said Ready but sent no result.", **extensions
            )
        return result
    if status in MODERATED_STATUSES:
        stage = "prompt or input image" if status == "Request Moderated" else "generated image"
        reasons = moderation_reasons(answer.get("details"))
        detail = f"Black Forest Labs' moderation flagged the {stage} ({status}).{reasons}"
        raise ModerationBlocked(detail, **extensions)
    if status == "Task not found":
        raise ProviderError(
            "Black Forest Labs no longer knows the task (Task not found): it expired or was lost.",
            **extensions,
        )
    if status in ("Error", "Failed"):
        raise ProviderError(f"Black Forest Labs failed to make the image ({status}).", **extensions)
    raise ProviderMalformedResponse(
        f"Black Forest Labs answered with an unknown status {str(status)[:40]!r}.", **extensions
    )


def moderation_reasons(details: object) -> str:
    """A short ` Reasons: ...` suffix from the `details` BFL attaches to a moderated task."""
    if not isinstance(details, dict):
        return ""
    reasons = details.get("Moderation Reasons") or details.get("moderation_reasons")
    if isinstance(reasons, list) and reasons:
        return " Reasons: " + ", ".join(str(reason) for reason in reasons[:5]) + "."
    return ""


def cost_of(model: FluxModel, submitted: dict[str, Any]) -> float | None:
    """What the image cost: the credits BFL reported for it, else the model's list price."""
    credits = submitted.get("cost")
    if isinstance(credits, int | float) and not isinstance(credits, bool) and credits >= 0:
        return round(credits * USD_PER_CREDIT, 6)
    return model.price_per_image_usd
