"""The `replicate` provider: any image model hosted on Replicate, through its predictions API.
Model ids are `replicate/<owner>/<name>` (an official model, run by name) or
`replicate/<owner>/<name>:<version id>` (a pinned version of any model). A few models have their
input names in a table here; every other id resolves too, with a generic input mapping and
capabilities Darkroom cannot know.

The protocol as Replicate documents it, read 2026-11-28:
- replicate.com/docs/topics/predictions/create-a-prediction and the HTTP reference:
  `POST /v1/models/{owner}/{name}/predictions` for official models and `POST /v1/predictions`
  with `version` for a version; body `{"input": {...}}`; `Authorization: Bearer <token>`;
  `Prefer: wait=N` (1 to 60 s) holds the request open until the prediction finishes or N
  passes, then answers with the prediction as it stands.
- replicate-python (replicate/prediction.py, replicate/exceptions.py): the prediction object
  (`id, status, output, error, logs, metrics, urls.get, urls.cancel`), the statuses starting,
  processing, succeeded, failed, canceled, the `Prefer` header, and errors as RFC 7807 problem
  details (`title`, `detail`, `status`).
- replicate.com/docs/topics/predictions/rate-limits: 429 `{"detail": "Request was throttled..."}`.
- replicate.com/docs/reference/error-codes: `E####` codes in a failed prediction's error (E1000
  unknown, E6716 timed out starting: both worth another try). The `error` field is free text;
  safety refusals say "NSFW content detected" or "flagged as sensitive (E005)".
- Model input schemas from each model's API page on replicate.com: black-forest-labs/flux-schnell
  (`aspect_ratio` from a list, `output_format` webp/jpg/png, output a list of URLs),
  black-forest-labs/flux-1.1-pro (`aspect_ratio: "custom"` with width/height 256 to 1440,
  output one URL), black-forest-labs/flux-kontext-pro (`input_image`, `aspect_ratio` or
  `match_input_image`, output one URL).

Cost: official models bill per output image and the prediction reports only run time
(`metrics.predict_time`), so the cost of a Replicate image is recorded as unknown.
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
    ProviderOverloaded,
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
    snap,
)
from app.providers.transport import error_for_status

PROVIDER = "replicate"

# `owner/name`, optionally `:<64 hex version id>`, as Replicate spells model identifiers.
MODEL_ID = re.compile(r"[a-z0-9][a-z0-9_.-]*/[a-z0-9][a-z0-9_.-]*(:[0-9a-f]{64})?", re.IGNORECASE)

RUNNING_STATUSES = {"starting", "processing"}

PRICING = (
    "Official models are billed per output image, others per second of compute; a prediction "
    "reports neither price, so each job's cost is null."
)
# Failure text of safety refusals, matched case-insensitively in a failed prediction's error.
MODERATION_PATTERN = re.compile(
    r"nsfw|flagged as sensitive|\(E005\)|content policy|safety (checker|filter)", re.IGNORECASE
)
# Platform error codes after which the same request may well succeed.
PASSING_ERROR_CODES = ("E1000", "E6716")

# The longest a create request asks Replicate to hold open (the documented maximum).
MAX_WAIT_SECONDS = 60

FLUX_RATIOS = ("1:1", "16:9", "21:9", "3:2", "2:3", "4:5", "5:4", "3:4", "4:3", "9:16", "9:21")


@dataclass(frozen=True)
class ReplicateModel:
    """A model whose inputs Darkroom knows: how it takes a size (`pixels`: width and height;
    `custom_ratio`: aspect_ratio "custom" plus width and height; `ratio`: the nearest of
    `ratios`), the input that takes an image to edit (None: no edits), and the output_format
    value to ask for."""

    name: str
    description: str
    sizing: str
    ratios: tuple[str, ...] = ()
    edit_input: str | None = None
    output_format: str | None = "png"
    min_side: int = 256
    max_side: int = 1440


KNOWN_MODELS = (
    ReplicateModel(
        "black-forest-labs/flux-schnell",
        "FLUX.1 [schnell] on Replicate: the fastest FLUX, by aspect ratio at about 1 megapixel.",
        "ratio",
        ratios=FLUX_RATIOS,
    ),
    ReplicateModel(
        "black-forest-labs/flux-1.1-pro",
        "FLUX1.1 [pro] on Replicate, at the requested size.",
        "custom_ratio",
    ),
    ReplicateModel(
        "black-forest-labs/flux-kontext-pro",
        "FLUX.1 Kontext [pro] on Replicate: edits by instruction, or text to image.",
        "ratio",
        ratios=FLUX_RATIOS,
        edit_input="input_image",
    ),
)
KNOWN_BY_NAME = {model.name: model for model in KNOWN_MODELS}

# Unknown models: the input names most Replicate image models share.
GENERIC = ReplicateModel(
    "", "", "pixels", edit_input="image", output_format=None, min_side=64, max_side=2048
)


def spec_for(model: ReplicateModel, name: str, description: str) -> ModelSpec:
    """The catalog entry for a model under the name it was asked by."""
    return ModelSpec(
        provider=PROVIDER,
        name=name,
        description=description,
        capabilities=ModelCapabilities(
            modes=("generate", "edit") if model.edit_input else ("generate",),
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


class ReplicateProvider(HTTPVendor):
    """Image models hosted on Replicate, available when an API token is configured."""

    name = PROVIDER
    key_label = "Replicate API token"
    enabled_by = "DARKROOM_REPLICATE_API_KEY"
    default_base_url = "https://api.replicate.com/v1"
    pricing = PRICING

    def read_error(self, response: httpx.Response) -> ProviderError:
        """The typed failure for a non-2xx answer, from its problem-details body."""
        status = response.status_code
        message = detail_message(response)
        extensions = {"provider": PROVIDER, "provider_status": status}
        if status == 402:
            return ProviderQuotaExhausted(f"Replicate: {message}", **extensions)
        if status == 404:
            return InvalidForModel(f"Replicate does not know this model: {message}", **extensions)
        return error_for_status(PROVIDER, status, message, label="Replicate")

    def models(self) -> list[ModelSpec]:
        """The models whose inputs this adapter knows; any other id resolves by model_spec."""
        return list(MODELS)

    def model_spec(self, name: str) -> ModelSpec | None:
        """The spec for any `owner/name[:version]` id: a known model's, or a generic one."""
        known = KNOWN_BY_NAME.get(name.partition(":")[0])
        if known is not None:
            return spec_for(known, name, known.description)
        if not MODEL_ID.fullmatch(name):
            return None
        description = (
            f"{name} on Replicate. Darkroom does not know this model's inputs or limits: it "
            "sends prompt, width, height and seed (and `image` for edits)."
        )
        return spec_for(GENERIC, name, description)

    async def generate(self, call: GenerateCall) -> GenerateResult:
        """One image from the prompt; the size goes in the way the model takes it."""
        model = self._model(call.model)
        return await self._run(
            call.model, model_input(model, call.prompt, call.seed, call.width, call.height)
        )

    async def edit(self, call: EditCall) -> GenerateResult:
        """An edit of the source image, sent as a data URI in the model's image input."""
        model = self._model(call.model)
        if model.edit_input is None:
            raise InvalidForModel(f"replicate/{call.model} cannot edit images.", provider=PROVIDER)
        if call.mask is not None or call.references:
            raise InvalidForModel(
                f"replicate/{call.model} takes neither a mask nor references here.",
                provider=PROVIDER,
            )
        fields = model_input(model, call.prompt, call.seed, call.width, call.height, call.image)
        return await self._run(call.model, fields)

    def _model(self, name: str) -> ReplicateModel:
        self.check_configured()
        if self.model_spec(name) is None:
            raise InvalidForModel(f"{name!r} is not a Replicate model id.", provider=PROVIDER)
        return KNOWN_BY_NAME.get(name.partition(":")[0], GENERIC)

    async def _run(self, name: str, fields: dict[str, Any]) -> GenerateResult:
        """Create the prediction (waiting briefly for it), poll it to a final status, download
        its first output."""
        prediction = await self._create(name, fields)
        prediction_id = str(prediction.get("id") or "")
        final = read_prediction(prediction)
        if final is None:
            urls = prediction.get("urls") if isinstance(prediction.get("urls"), dict) else {}
            get_url = check_same_site(self._http, urls.get("get"), "prediction URL")
            cancel_url = urls.get("cancel")

            async def check() -> dict[str, Any] | None:
                return read_prediction(await self._http.request_json("GET", get_url))

            async def cancel() -> None:
                url = check_same_site(self._http, cancel_url, "cancel URL")
                await self._http.request("POST", url)

            final = await poll_until_done(
                check,
                vendor=PROVIDER,
                deadline_seconds=self._http.timeout_seconds,
                interval_seconds=self._http.poll_interval_seconds,
                on_deadline=cancel,
                provider_request_id=prediction_id,
            )
        image, data = await fetch_result_image(self._http, first_output(final.get("output")))
        details: dict[str, Any] = {"provider_request_id": prediction_id}
        metrics = final.get("metrics")
        if isinstance(metrics, dict) and isinstance(metrics.get("predict_time"), int | float):
            details["provider_predict_seconds"] = metrics["predict_time"]
        return GenerateResult(image=image, cost_usd=None, details=details, encoded=data)

    async def _create(self, name: str, fields: dict[str, Any]) -> dict[str, Any]:
        model, _, version = name.partition(":")
        if version:
            path, body = "predictions", {"version": version, "input": fields}
        else:
            path, body = f"models/{model}/predictions", {"input": fields}
        # Hold the request for at most half the time limit, so a slow model falls back to
        # polling instead of timing out (and being created twice by a retry).
        wait = min(MAX_WAIT_SECONDS, int(self._http.timeout_seconds // 2))
        headers = {"Prefer": f"wait={wait}"} if wait >= 1 else {}
        answer = await self._http.request_json("POST", path, json=body, headers=headers)
        if not isinstance(answer, dict) or not answer.get("id"):
            raise ProviderMalformedResponse(
                "Replicate's answer is no prediction.", provider=PROVIDER
            )
        return answer


def model_input(
    model: ReplicateModel,
    prompt: str,
    seed: int,
    width: int,
    height: int,
    image: InputImage | None = None,
) -> dict[str, Any]:
    """The prediction input for `model`: prompt, seed, size the way it takes one, the output
    format it should use, and the source image for an edit."""
    fields: dict[str, Any] = {"prompt": prompt, "seed": seed}
    if model.output_format:
        fields["output_format"] = model.output_format
    if image is not None and model.edit_input:
        fields[model.edit_input] = data_uri(image, PROVIDER)
    if model.sizing == "ratio":
        fields["aspect_ratio"] = (
            "match_input_image" if image is not None else nearest_ratio(width, height, model.ratios)
        )
        return fields
    if model.sizing == "custom_ratio":
        fields["aspect_ratio"] = "custom"
    fields["width"] = snap(width, 16, model.min_side, model.max_side)
    fields["height"] = snap(height, 16, model.min_side, model.max_side)
    return fields


def read_prediction(prediction: object) -> dict[str, Any] | None:
    """The prediction once it has succeeded, None while it runs; raises when it failed or
    was canceled."""
    if not isinstance(prediction, dict):
        raise ProviderMalformedResponse(
            "Replicate's prediction is not an object.", provider=PROVIDER
        )
    status = prediction.get("status")
    extensions = {"provider": PROVIDER, "provider_request_id": str(prediction.get("id") or "")}
    if status in RUNNING_STATUSES:
        return None
    if status == "succeeded":
        return prediction
    if status == "failed":
        raise failure(str(prediction.get("error") or "no error message")[:300], extensions)
    if status == "canceled":
        raise ProviderError("The Replicate prediction was canceled.", **extensions)
    raise ProviderMalformedResponse(
        f"Replicate answered with an unknown status {str(status)[:40]!r}.", **extensions
    )


def failure(error: str, extensions: dict[str, Any]) -> ProviderError:
    """The typed error for a failed prediction, from its free-text error."""
    if MODERATION_PATTERN.search(error):
        return ModerationBlocked(f"Replicate's safety checker: {error}", **extensions)
    if any(code in error for code in PASSING_ERROR_CODES):
        return ProviderOverloaded(f"The Replicate prediction failed: {error}", **extensions)
    return ProviderError(f"The Replicate prediction failed: {error}", **extensions)


def first_output(output: object) -> object:
    """The first image URL of an output that is one URL or a list of them."""
    if isinstance(output, list):
        return output[0] if output else None
    return output
