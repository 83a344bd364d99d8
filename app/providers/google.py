"""The `google` provider: Gemini's native image models ("Nano Banana") over the Gemini API's
`POST {base}/models/{model}:generateContent`, spoken through the shared vendor transport.

What it relies on (all read 2026-11-28):
- the google-genai Python SDK 3.3.0 (`types.py`: ImageConfig, FinishReason, BlockedReason,
  GenerateContentResponseUsageMetadata; `models.py`: the Gemini Developer API request
  converters; `_api_client.py`: the `x-goog-api-key` header) for the wire shape: camelCase JSON,
  `contents[].parts[]` of `text` and `inlineData {mimeType, data}`, and
  `generationConfig {responseModalities, imageConfig {aspectRatio, imageSize}}`;
- Google's model pages (docs.cloud.google.com .../models/gemini/3-pro-image, 3-1-flash-image,
  3-1-flash-lite-image, 2-5-flash-image) for model ids, launch stage, images per prompt,
  supported aspect ratios and resolutions, and output tokens per image;
- the Gemini API image-generation guide's pixel table per aspect ratio and size tier, and its
  pricing page's image-output rates, both as quoted on third-party pages (the guide itself was
  not reachable from here): see SIZES_GEMINI_3, SIZES_GEMINI_2_5 and PRICES.

Not used: the 512 tier and the extreme ratios (1:4, 4:1, 1:8, 8:1) of gemini-3.1-flash-image,
whose pixel sizes could not be confirmed; the `-preview` ids, discontinued since the GA models
shipped; `generationConfig.seed`, a best-effort decoding seed that does not make an image
reproducible, so the models declare no seed; masks, which the API does not take (an edit says
in words what to change).
"""

from dataclasses import dataclass
from typing import Any

import httpx
import pybase64

from app.cpu import run_cpu
from app.errors import (
    InvalidForModel,
    ModerationBlocked,
    ProviderAuthFailed,
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
from app.providers.transport import (
    decode_vendor_image,
    error_for_status,
    input_media_type,
)

PROVIDER = "google"
LABEL = "The Gemini API"
DEFAULT_BASE_URL = "https://generativelanguage.googleapis.com/v1beta"

# Generation sizes per aspect ratio of the Gemini 3 image models, per size tier.
SIZES_GEMINI_3: dict[str, dict[str, tuple[int, int]]] = {
    "1K": {
        "1:1": (1024, 1024),
        "2:3": (848, 1264),
        "3:2": (1264, 848),
        "3:4": (896, 1200),
        "4:3": (1200, 896),
        "4:5": (928, 1152),
        "5:4": (1152, 928),
        "9:16": (768, 1376),
        "16:9": (1376, 768),
        "21:9": (1584, 672),
    },
    "2K": {
        "1:1": (2048, 2048),
        "2:3": (1696, 2528),
        "3:2": (2528, 1696),
        "3:4": (1792, 2400),
        "4:3": (2400, 1792),
        "4:5": (1856, 2304),
        "5:4": (2304, 1856),
        "9:16": (1536, 2752),
        "16:9": (2752, 1536),
        "21:9": (3168, 1344),
    },
    "4K": {
        "1:1": (4096, 4096),
        "2:3": (3392, 5056),
        "3:2": (5056, 3392),
        "3:4": (3584, 4800),
        "4:3": (4800, 3584),
        "4:5": (3712, 4608),
        "5:4": (4608, 3712),
        "9:16": (3072, 5504),
        "16:9": (5504, 3072),
        "21:9": (6336, 2688),
    },
}

# Quality is the size tier (`imageSize`) on models with several: the output is then scaled to
# the exact size asked for like any other.
QUALITY_LEVELS = (
    ("draft", "1K"),
    ("standard", "the size tier nearest the output size"),
    ("high", "2K or larger"),
    ("auto", "the size tier nearest the output size"),
)

# Gemini 2.5 Flash Image makes one size per aspect ratio (1290 output tokens each).
SIZES_GEMINI_2_5: dict[str, dict[str, tuple[int, int]]] = {
    "1K": {
        "1:1": (1024, 1024),
        "2:3": (832, 1248),
        "3:2": (1248, 832),
        "3:4": (864, 1184),
        "4:3": (1184, 864),
        "4:5": (896, 1152),
        "5:4": (1152, 896),
        "9:16": (768, 1344),
        "16:9": (1344, 768),
        "21:9": (1536, 672),
    }
}


@dataclass(frozen=True)
class GeminiPrices:
    """A model's list prices in USD per million tokens: input (text and image), text output
    (thinking included), and image output."""

    input: float
    text_output: float
    image_output: float


@dataclass(frozen=True)
class GeminiImageModel:
    """One Gemini image model: its size table, output tokens per size tier, how many images
    one prompt may carry, and its prices."""

    name: str
    description: str
    sizes: dict[str, dict[str, tuple[int, int]]]
    tokens_per_image: dict[str, int]
    max_input_images: int
    prices: GeminiPrices

    def aspect_and_tier(self, width: int, height: int) -> tuple[str, str] | None:
        """The aspect ratio and size tier that make exactly width x height, if any."""
        for tier, by_ratio in self.sizes.items():
            for ratio, size in by_ratio.items():
                if size == (width, height):
                    return ratio, tier
        return None

    def price_of(self, tier: str) -> float:
        """The list price of one image of this tier (its output tokens at the image rate)."""
        return self.tokens_per_image[tier] * self.prices.image_output / 1_000_000

    def quality_sizes(self) -> tuple[tuple[str, tuple[tuple[int, int], ...]], ...]:
        """The sizes each quality tier may be made at, on a model with several size tiers:
        a draft at the smallest tier, a high-quality image at the second or larger."""
        tiers = list(self.sizes)
        if len(tiers) == 1:
            return ()

        def sizes_of(used: list[str]) -> tuple[tuple[int, int], ...]:
            return tuple(size for tier in used for size in self.sizes[tier].values())

        return (("draft", sizes_of(tiers[:1])), ("high", sizes_of(tiers[1:])))

    def quality_prices(self) -> tuple[tuple[str, tuple[float, float]], ...]:
        """Each quality tier's (lowest, highest) list price per image over the size tiers it
        may use; empty for a model with one size tier."""
        tiers = list(self.sizes)
        if len(tiers) == 1:
            return ()

        def span(used: list[str]) -> tuple[float, float]:
            prices = [round(self.price_of(tier), 4) for tier in used]
            return min(prices), max(prices)

        return (
            ("draft", span(tiers[:1])),
            ("standard", span(tiers)),
            ("high", span(tiers[1:])),
            ("auto", span(tiers)),
        )

    def spec(self) -> ModelSpec:
        """The catalog entry."""
        sizes = tuple(size for by_ratio in self.sizes.values() for size in by_ratio.values())
        return ModelSpec(
            provider=PROVIDER,
            name=self.name,
            description=self.description,
            capabilities=ModelCapabilities(
                modes=("generate", "edit"),
                sizes=sizes,
                max_side=max(max(size) for size in sizes),
                output_formats=("png", "jpeg", "webp"),
                seed=False,
                negative_prompt=False,
                mask=False,
                # The source image is one of the images a prompt may carry.
                max_references=self.max_input_images - 1,
                max_n=4,
                prompt_style="sentences",
                max_prompt_chars=8000,
                quality_levels=QUALITY_LEVELS if len(self.sizes) > 1 else (),
                quality_sizes=self.quality_sizes(),
            ),
            price_per_image_usd=round(self.price_of("1K"), 4),
            prices_by_quality=self.quality_prices(),
        )


# Output tokens per image: 1120 for 1K, 1680 for 2K and 2520 for 4K on 3.1 Flash Image; 1120
# for 1K and 2K and 2000 for 4K on 3 Pro Image; 1120 on 3.1 Flash-Lite Image; 1290 on 2.5 Flash
# Image. Prices per million tokens from the Gemini API pricing page as quoted 2026-11-28.
MODELS = (
    GeminiImageModel(
        name="gemini-3.1-flash-image",
        description=(
            "Google Nano Banana 2 (Gemini 3.1 Flash Image): fast generation and editing at "
            "1K, 2K or 4K, up to 14 input images. No mask: say what to change in the prompt."
        ),
        sizes=SIZES_GEMINI_3,
        tokens_per_image={"1K": 1120, "2K": 1680, "4K": 2520},
        max_input_images=14,
        prices=GeminiPrices(input=0.50, text_output=3.00, image_output=60.00),
    ),
    GeminiImageModel(
        name="gemini-3-pro-image",
        description=(
            "Google Nano Banana Pro (Gemini 3 Pro Image): reasoning before drawing, the best "
            "text rendering, 1K to 4K, up to 14 input images. No mask."
        ),
        sizes=SIZES_GEMINI_3,
        tokens_per_image={"1K": 1120, "2K": 1120, "4K": 2000},
        max_input_images=14,
        prices=GeminiPrices(input=2.00, text_output=12.00, image_output=120.00),
    ),
    GeminiImageModel(
        name="gemini-3.1-flash-lite-image",
        description=(
            "Google Nano Banana 2 Lite (Gemini 3.1 Flash-Lite Image): the lowest latency and "
            "cost, 1K only, up to 14 input images. No mask."
        ),
        sizes={"1K": SIZES_GEMINI_3["1K"]},
        tokens_per_image={"1K": 1120},
        max_input_images=14,
        prices=GeminiPrices(input=0.25, text_output=1.50, image_output=30.00),
    ),
    GeminiImageModel(
        name="gemini-2.5-flash-image",
        description=(
            "Google Nano Banana (Gemini 2.5 Flash Image): the first Gemini image model, 1K "
            "only, up to 3 input images. No mask."
        ),
        sizes=SIZES_GEMINI_2_5,
        tokens_per_image={"1K": 1290},
        max_input_images=3,
        prices=GeminiPrices(input=0.30, text_output=2.50, image_output=30.00),
    ),
)
MODELS_BY_NAME = {model.name: model for model in MODELS}

# Finish reasons (google-genai FinishReason) that mean a safety system refused the image.
MODERATION_FINISH_REASONS = {
    "SAFETY",
    "PROHIBITED_CONTENT",
    "BLOCKLIST",
    "SPII",
    "RECITATION",
    "IMAGE_SAFETY",
    "IMAGE_PROHIBITED_CONTENT",
    "IMAGE_RECITATION",
}

# The largest image the 4K tier makes; anything bigger is not a real answer.
MAX_OUTPUT_PIXELS = 6336 * 2688


def quota_ids(details: list[dict[str, Any]]) -> list[str]:
    """The quota ids a google.rpc.QuotaFailure detail names."""
    ids = []
    for detail in details:
        for violation in detail.get("violations") or []:
            if isinstance(violation, dict) and violation.get("quotaId"):
                ids.append(str(violation["quotaId"]))
    return ids


class GoogleProvider(HTTPVendor):
    """Gemini's image models, available when an API key is configured."""

    name = PROVIDER
    key_label = "Gemini API key"
    enabled_by = "DARKROOM_GOOGLE_API_KEY"
    default_base_url = DEFAULT_BASE_URL

    def auth_headers(self, api_key: str) -> dict[str, str]:
        """The Gemini API takes the key in `x-goog-api-key`."""
        return {"x-goog-api-key": api_key}

    def read_error(self, response: httpx.Response) -> ProviderError:
        """The typed failure for a Gemini API error answer, `{"error": {"code", "message",
        "status", "details"}}`. A key the API does not know comes back as INVALID_ARGUMENT with
        reason API_KEY_INVALID; a per-day quota is final where a rate limit is worth retrying; the
        rest goes by HTTP status, which google.rpc fixes for each `status`."""
        try:
            error = response.json().get("error")
        except (ValueError, AttributeError):
            error = None
        if not isinstance(error, dict):
            return error_for_status(
                PROVIDER, response.status_code, response.text[:300], label=LABEL
            )
        status = str(error.get("status") or "")
        message = str(error.get("message") or "no message")
        details = [d for d in error.get("details") or [] if isinstance(d, dict)]
        extensions = {
            "provider": PROVIDER,
            "provider_status": response.status_code,
            "provider_code": status or None,
        }
        reasons = {str(d.get("reason")) for d in details if d.get("reason")}
        if "API_KEY_INVALID" in reasons:
            message = f"{LABEL} refused this server's API key ({status})."
            return ProviderAuthFailed(message, **extensions)
        if status == "RESOURCE_EXHAUSTED" or response.status_code == 429:
            if any("PerDay" in quota_id for quota_id in quota_ids(details)):
                return ProviderQuotaExhausted(f"Gemini API daily quota: {message}", **extensions)
            return ProviderOverloaded(f"Gemini API rate limit (HTTP 429): {message}", **extensions)
        summary = f"{status}: {message}" if status else message
        return error_for_status(PROVIDER, response.status_code, summary, label=LABEL, **extensions)

    def models(self) -> list[ModelSpec]:
        """The Gemini image models."""
        return [model.spec() for model in MODELS]

    async def generate(self, call: GenerateCall) -> GenerateResult:
        """One image from the prompt alone, at one of the model's generation sizes."""
        model, aspect, tier = self._resolve(call.model, call.width, call.height)
        parts: list[dict[str, Any]] = [{"text": call.prompt}]
        return await self._generate_content(model, parts, aspect, tier)

    async def edit(self, call: EditCall) -> GenerateResult:
        """The source image changed as the prompt says, steered by the reference images, all
        sent as inline image parts after the instruction. The API takes no mask."""
        model, aspect, tier = self._resolve(call.model, call.width, call.height)
        if call.mask is not None:
            raise InvalidForModel(
                f"{PROVIDER}/{model.name} takes no mask; describe the area to change in the "
                "prompt instead.",
                provider=PROVIDER,
            )
        images = [call.image, *(reference.image for reference in call.references)]
        if len(images) > model.max_input_images:
            raise InvalidForModel(
                f"{PROVIDER}/{model.name} takes at most {model.max_input_images} images per "
                f"request (the source and {model.max_input_images - 1} references).",
                provider=PROVIDER,
            )
        parts = [{"text": edit_instruction(call)}]
        parts += [inline_part(image) for image in images]
        return await self._generate_content(model, parts, aspect, tier)

    def _resolve(self, name: str, width: int, height: int) -> tuple[GeminiImageModel, str, str]:
        """The model, and the aspect ratio and size tier that make width x height."""
        self.check_configured()
        model = MODELS_BY_NAME.get(name)
        if model is None:
            raise InvalidForModel(f"{PROVIDER} has no model {name!r}.", provider=PROVIDER)
        found = model.aspect_and_tier(width, height)
        if found is None:
            raise InvalidForModel(
                f"{PROVIDER}/{name} does not make {width}x{height}; GET /v1/models lists its "
                "sizes.",
                provider=PROVIDER,
            )
        return model, *found

    async def _generate_content(
        self, model: GeminiImageModel, parts: list[dict[str, Any]], aspect: str, tier: str
    ) -> GenerateResult:
        body = request_body(model, parts, aspect, tier)

        async def read(response: httpx.Response) -> tuple[Any, bytes, str | None, str | None, Any]:
            # Within the attempt, so an answer with no usable image is retried.
            payload = self._http.json(response)
            data, mime_type, text = read_image(payload)
            image = await run_cpu(decode_vendor_image, data, PROVIDER, MAX_OUTPUT_PIXELS, LABEL)
            return payload, data, mime_type, text, image

        path = f"models/{model.name}:generateContent"
        payload, data, mime_type, text, image = await self._http.call("POST", path, read, json=body)
        usage = payload.get("usageMetadata") if isinstance(payload, dict) else None
        details: dict[str, Any] = {"aspect_ratio": aspect, "image_size": tier}
        if isinstance(usage, dict):
            details["usage"] = usage
        if text:
            details["vendor_text"] = text[:500]
        if mime_type:
            details["vendor_format"] = mime_type
        cost = cost_of(model, tier, usage)
        return GenerateResult(image=image, cost_usd=cost, details=details, encoded=data)


def request_body(
    model: GeminiImageModel, parts: list[dict[str, Any]], aspect: str, tier: str
) -> dict[str, Any]:
    """A GenerateContentRequest asking for an image only, at an aspect ratio; the size tier
    is sent only to models that have more than one (the others take 1K, the default)."""
    image_config = {"aspectRatio": aspect}
    if len(model.sizes) > 1:
        image_config["imageSize"] = tier
    return {
        "contents": [{"role": "user", "parts": parts}],
        "generationConfig": {"responseModalities": ["IMAGE"], "imageConfig": image_config},
    }


def edit_instruction(call: EditCall) -> str:
    """The text part of an edit: the prompt, then what each attached image is, since the model
    sees only their order."""
    lines = [call.prompt, "", "Image 1 is the image to edit."]
    for number, reference in enumerate(call.references, start=2):
        lines.append(
            f"Image {number} is a {reference.role} reference (weight {reference.weight:.2f})."
        )
    if call.keep:
        lines.append("Keep unchanged: " + ", ".join(call.keep) + ".")
    return "\n".join(lines)


def inline_part(image: InputImage) -> dict[str, Any]:
    """An `inlineData` part for an input image: its own bytes, base64."""
    media_type = input_media_type(image, PROVIDER)
    data = pybase64.b64encode(image.data).decode()
    return {"inlineData": {"mimeType": media_type, "data": data}}


def read_image(payload: Any) -> tuple[bytes, str | None, str]:
    """The first image of the first candidate, its media type and any text beside it.
    ModerationBlocked when the prompt or the candidate was blocked; ProviderMalformedResponse
    when the answer carries no image."""
    if not isinstance(payload, dict):
        raise ProviderMalformedResponse(
            "The Gemini API's answer is not an object.", provider=PROVIDER
        )
    feedback = payload.get("promptFeedback")
    block_reason = feedback.get("blockReason") if isinstance(feedback, dict) else None
    if block_reason:
        raise ModerationBlocked(
            f"The Gemini API blocked the prompt ({block_reason}).",
            provider=PROVIDER,
            provider_code=block_reason,
        )
    candidates = payload.get("candidates")
    candidate = candidates[0] if isinstance(candidates, list) and candidates else None
    if not isinstance(candidate, dict):
        raise ProviderMalformedResponse(
            "The Gemini API's answer has no candidates.", provider=PROVIDER
        )
    finish_reason = candidate.get("finishReason")
    if finish_reason in MODERATION_FINISH_REASONS:
        raise ModerationBlocked(
            f"The Gemini API's safety system stopped the image ({finish_reason}).",
            provider=PROVIDER,
            provider_code=finish_reason,
        )
    content = candidate.get("content")
    parts = content.get("parts") if isinstance(content, dict) else None
    parts = [part for part in parts or [] if isinstance(part, dict)]
    text = " ".join(str(part["text"]) for part in parts if isinstance(part.get("text"), str))
    for part in parts:
        inline = part.get("inlineData")
        if isinstance(inline, dict) and str(inline.get("mimeType", "")).startswith("image/"):
            return decode_base64(inline.get("data")), inline.get("mimeType"), text
    said = f"; it said: {text[:200]!r}" if text else ""
    raise ProviderMalformedResponse(
        f"The Gemini API answered without an image (finishReason {finish_reason}){said}.",
        provider=PROVIDER,
        provider_code=finish_reason,
    )


def decode_base64(encoded: object) -> bytes:
    """Bytes of an inlineData `data` field; ProviderMalformedResponse if it is not base64."""
    if not isinstance(encoded, str) or not encoded:
        raise ProviderMalformedResponse("The Gemini API's image has no data.", provider=PROVIDER)
    try:
        return pybase64.b64decode(encoded, validate=True)
    except ValueError as exc:  # binascii.Error, or a character outside ASCII
        raise ProviderMalformedResponse(
            "The Gemini API's image is not valid base64.", provider=PROVIDER
        ) from exc


def cost_of(model: GeminiImageModel, tier: str, usage: object) -> float:
    """What one image cost: the reported usage at the model's token prices, or the list price
    of the tier when the answer reported no usage."""
    if not isinstance(usage, dict):
        return model.price_of(tier)
    try:
        prompt_tokens = int(usage.get("promptTokenCount") or 0)
        thoughts = int(usage.get("thoughtsTokenCount") or 0)
        by_modality = {
            str(entry.get("modality")): int(entry.get("tokenCount") or 0)
            for entry in usage.get("candidatesTokensDetails") or []
            if isinstance(entry, dict)
        }
    except (TypeError, ValueError, AttributeError):
        return model.price_of(tier)
    # An answer that does not break its output down by modality is billed at the tier's tokens.
    image_tokens = by_modality.get("IMAGE") or model.tokens_per_image[tier]
    text_tokens = sum(count for modality, count in by_modality.items() if modality != "IMAGE")
    prices = model.prices
    total = (
        prompt_tokens * prices.input
        + (text_tokens + thoughts) * prices.text_output
        + image_tokens * prices.image_output
    )
    return total / 1_000_000
