"""The `stability` provider: Stability AI's v2beta Stable Image REST API (generate, edit and
upscale), spoken through the shared vendor transport.

What it relies on (read 2026-11-28): Stability's REST API reference for v2beta
(platform.stability.ai/docs/api-reference) and its Python samples: every call is
`multipart/form-data` with `Authorization: Bearer <key>`; `Accept: image/*` answers with the
image bytes and the `finish-reason` (SUCCESS or CONTENT_FILTERED) and `seed` headers, while
`application/json` would answer `{image, finish_reason, seed}`. This adapter always asks for
`image/*`: no base64 overhead, and the finish reason and seed still come back. Errors are
`{"id", "name", "errors": [...]}`: 401 unauthorized, 402 when the account's credits are spent,
403 `content_moderation`, 413 payload too large, 422 invalid language or parameters, 429 rate
limited, 5xx internal. Credits per generation (1 credit = $0.01) are from Stability's pricing
as quoted on developer.puter.com's June 2026 table: Ultra 8, SD 3.5 Large 6.5, Large Turbo 4,
Medium 3.5, Core 3. The edit and upscale services' credit prices could not be confirmed, so
their cost is recorded as unknown (None), not guessed.

How Darkroom's calls map onto the endpoints:
- generate on ultra / core / sd3.5-* -> `generate/{ultra|core|sd3}` with `aspect_ratio`;
- edit with a mask on those models -> `edit/inpaint` (Darkroom's transparent mask pixels become
  Stability's white "change here" pixels); edit without a mask -> image-to-image on the model's
  own generate endpoint with `image` and `strength` (core has no image-to-image, so it takes
  masked edits only); search-and-replace is not used, because Darkroom's edit request carries
  no "what to search for" prompt;
- the edit-only models `erase`, `outpaint` (padding computed from the requested aspect),
  `remove-background`, `upscale-fast` and `upscale-conservative` call their own endpoints.
Left out: `upscale/creative`, which answers with an id to poll at `/v2beta/results/{id}`.
"""

import io
from dataclasses import dataclass, field
from typing import Any

import httpx
from PIL import Image

from app.cpu import run_cpu
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
from app.providers.transport import (
    decode_vendor_image,
    error_for_status,
    input_media_type,
)

PROVIDER = "stability"
LABEL = "Stability"
DEFAULT_BASE_URL = "https://api.stability.ai"
USD_PER_CREDIT = 0.01

# The aspect ratios the generate endpoints take, with the ~1 megapixel size an output of each
# has. Stability documents ratios rather than pixels; the job fits whatever size comes back to
# the exact request, so these only pick the ratio.
ASPECT_SIZES: dict[str, tuple[int, int]] = {
    "1:1": (1024, 1024),
    "16:9": (1344, 768),
    "9:16": (768, 1344),
    "21:9": (1536, 640),
    "9:21": (640, 1536),
    "3:2": (1216, 832),
    "2:3": (832, 1216),
    "5:4": (1088, 896),
    "4:5": (896, 1088),
}
RATIO_OF_SIZE = {size: ratio for ratio, size in ASPECT_SIZES.items()}

# Seeds the API takes: 0 means "pick one"; 4294967294 is the largest.
MAX_VENDOR_SEED = 4_294_967_294
# How far an image-to-image edit moves from the source when the request does not say.
DEFAULT_STRENGTH = 0.6
# Outpaint grows each side by at most this many pixels.
MAX_OUTPAINT_PIXELS = 2000
# The largest image any endpoint returns (conservative upscale goes up to 4K); bigger is bogus.
MAX_OUTPUT_PIXELS = 9_437_184 * 2

FINISH_REASON_HEADER = "finish-reason"


@dataclass(frozen=True)
class StabilityModel:
    """One catalog entry: the endpoint it calls, what kind of operation it is, its price in
    credits (None when unconfirmed) and what it takes."""

    name: str
    description: str
    path: str
    operation: str
    credits: float | None = None
    sd3_model: str | None = None
    negative_prompt: bool = True
    image_to_image: bool = False
    modes: tuple[str, ...] = ("generate", "edit")
    extra: dict[str, str] = field(default_factory=dict)
    # The faster, cheaper model of the same family that makes this model's `draft` quality.
    draft_model: "StabilityModel | None" = None

    def for_quality(self, quality: str) -> "StabilityModel":
        """The model that makes this one's images at a quality tier."""
        if quality == "draft" and self.draft_model is not None:
            return self.draft_model
        return self

    @property
    def price_usd(self) -> float | None:
        """The price of one call in USD, if known."""
        return None if self.credits is None else round(self.credits * USD_PER_CREDIT, 4)

    def spec(self) -> ModelSpec:
        """The catalog entry."""
        generates = self.operation == "generate"
        return ModelSpec(
            provider=PROVIDER,
            name=self.name,
            description=self.description,
            capabilities=ModelCapabilities(
                modes=self.modes,
                sizes=tuple(ASPECT_SIZES.values()) if generates else None,
                min_side=64,
                max_side=4096,
                output_formats=("png", "jpeg", "webp"),
                transparent_background=self.operation == "remove-background",
                seed=self.operation not in ("remove-background", "upscale-fast"),
                negative_prompt=self.negative_prompt,
                mask=self.operation in ("generate", "erase") and "edit" in self.modes,
                max_references=0,
                max_n=4,
                prompt_style="tags",
                max_prompt_chars=10_000,
                quality_levels=self.quality_levels(),
            ),
            price_per_image_usd=self.price_usd,
            prices_by_quality=self.quality_prices(),
        )

    def quality_levels(self) -> tuple[tuple[str, str], ...]:
        """A model with a draft model: `draft` is that model, every other tier this one."""
        if self.draft_model is None:
            return ()
        tiers = ("standard", "high", "auto")
        return (("draft", self.draft_model.name), *((tier, self.name) for tier in tiers))

    def quality_prices(self) -> tuple[tuple[str, tuple[float, float]], ...]:
        """The draft model's price for `draft`, where both prices are known."""
        price = None if self.draft_model is None else self.draft_model.price_usd
        return () if price is None else (("draft", (price, price)),)


GENERATE = "v2beta/stable-image/generate"
SD35_LARGE_TURBO = StabilityModel(
    name="sd3.5-large-turbo",
    description="Stable Diffusion 3.5 Large Turbo: few steps, no negative prompt. Edits: "
    "image-to-image, or inpainting with a mask.",
    path=f"{GENERATE}/sd3",
    operation="generate",
    credits=4,
    sd3_model="sd3.5-large-turbo",
    negative_prompt=False,
    image_to_image=True,
)
MODELS = (
    StabilityModel(
        name="ultra",
        description="Stability Stable Image Ultra: the most photoreal and detailed. Edits: "
        "image-to-image, or inpainting with a mask.",
        path=f"{GENERATE}/ultra",
        operation="generate",
        credits=8,
        image_to_image=True,
    ),
    StabilityModel(
        name="core",
        description="Stability Stable Image Core: fast and cheap. Edits: inpainting with a "
        "mask only.",
        path=f"{GENERATE}/core",
        operation="generate",
        credits=3,
    ),
    StabilityModel(
        name="sd3.5-large",
        description="Stable Diffusion 3.5 Large (8B). Edits: image-to-image, or inpainting "
        "with a mask.",
        path=f"{GENERATE}/sd3",
        operation="generate",
        credits=6.5,
        sd3_model="sd3.5-large",
        image_to_image=True,
        draft_model=SD35_LARGE_TURBO,
    ),
    SD35_LARGE_TURBO,
    StabilityModel(
        name="sd3.5-medium",
        description="Stable Diffusion 3.5 Medium (2.5B). Edits: image-to-image, or "
        "inpainting with a mask.",
        path=f"{GENERATE}/sd3",
        operation="generate",
        credits=3.5,
        sd3_model="sd3.5-medium",
        image_to_image=True,
    ),
    StabilityModel(
        name="erase",
        description="Stability Erase: removes what the mask covers and fills it in. Needs a "
        "mask; the prompt is not used.",
        path="v2beta/stable-image/edit/erase",
        operation="erase",
        negative_prompt=False,
        modes=("edit",),
    ),
    StabilityModel(
        name="outpaint",
        description="Stability Outpaint: extends the source to the requested aspect ratio, "
        "filling the new area from the prompt.",
        path="v2beta/stable-image/edit/outpaint",
        operation="outpaint",
        negative_prompt=False,
        modes=("edit",),
    ),
    StabilityModel(
        name="remove-background",
        description="Stability Remove Background: the subject on a transparent background. "
        "The prompt is not used.",
        path="v2beta/stable-image/edit/remove-background",
        operation="remove-background",
        negative_prompt=False,
        modes=("edit",),
    ),
    StabilityModel(
        name="upscale-fast",
        description="Stability Fast Upscaler: 4x the source's resolution in about a second. "
        "The prompt is not used.",
        path="v2beta/stable-image/upscale/fast",
        operation="upscale-fast",
        negative_prompt=False,
        modes=("edit",),
    ),
    StabilityModel(
        name="upscale-conservative",
        description="Stability Conservative Upscaler: up to 4 megapixels with minimal "
        "changes, guided by the prompt.",
        path="v2beta/stable-image/upscale/conservative",
        operation="upscale-conservative",
        modes=("edit",),
    ),
)
MODELS_BY_NAME = {model.name: model for model in MODELS}

Form = dict[str, tuple[str | None, str | bytes, str] | tuple[None, str]]


class StabilityProvider(HTTPVendor):
    """Stability AI's Stable Image services, available when an API key is configured."""

    name = PROVIDER
    key_label = "Stability API key"
    enabled_by = "DARKROOM_STABILITY_API_KEY"
    default_base_url = DEFAULT_BASE_URL

    def auth_headers(self, api_key: str) -> dict[str, str]:
        """The bearer key, and `Accept: image/*` for the image bytes themselves as the answer."""
        return super().auth_headers(api_key) | {"Accept": "image/*"}

    def read_error(self, response: httpx.Response) -> ProviderError:
        """The typed failure for a Stability error answer, `{"id", "name", "errors": [...]}`: a
        moderation refusal and spent credits by their own, the rest by status."""
        try:
            body = response.json()
        except ValueError:
            body = None
        body = body if isinstance(body, dict) else {}
        status = response.status_code
        name = str(body.get("name") or "")
        errors = body.get("errors")
        message = "; ".join(str(e) for e in errors) if isinstance(errors, list) else ""
        message = message or str(body.get("message") or response.text[:300] or "no message")
        extensions = {
            "provider": PROVIDER,
            "provider_status": status,
            "provider_code": name or None,
            "provider_request_id": body.get("id"),
        }
        if status == 403 and name == "content_moderation":
            return ModerationBlocked(f"Stability's content moderation: {message}", **extensions)
        if status == 402 or name == "payment_required":
            return ProviderQuotaExhausted(
                f"Stability account out of credits: {message}", **extensions
            )
        return error_for_status(PROVIDER, status, message, label=LABEL, **extensions)

    def models(self) -> list[ModelSpec]:
        """The Stable Image services."""
        return [model.spec() for model in MODELS]

    async def generate(self, call: GenerateCall) -> GenerateResult:
        """One text-to-image generation at the aspect ratio of the call's size."""
        model = self._model(call.model).for_quality(call.render.quality)
        if model.operation != "generate":
            raise InvalidForModel(
                f"{PROVIDER}/{model.name} only edits images; send it to an edit.",
                provider=PROVIDER,
            )
        ratio = RATIO_OF_SIZE.get((call.width, call.height))
        if ratio is None:
            raise InvalidForModel(
                f"{PROVIDER}/{model.name} does not make {call.width}x{call.height}; GET "
                "/v1/models lists its sizes.",
                provider=PROVIDER,
            )
        form = prompt_fields(model, call.prompt, call.negative_prompt, call.seed)
        form["aspect_ratio"] = (None, ratio)
        if model.sd3_model:
            form["mode"] = (None, "text-to-image")
        details = {"aspect_ratio": ratio, "vendor_model": model.name}
        return await self._post(model.path, form, model.price_usd, details)

    async def edit(self, call: EditCall) -> GenerateResult:
        """The source image edited by the endpoint the model and the call select (see the
        module docstring)."""
        model = self._model(call.model).for_quality(call.render.quality)
        if call.references:
            raise InvalidForModel(
                f"{PROVIDER}/{model.name} takes no reference images.", provider=PROVIDER
            )
        path, form, price, operation = await run_cpu(edit_request, model, call)
        return await self._post(path, form, price, {"operation": operation})

    def _model(self, name: str) -> StabilityModel:
        self.check_configured()
        model = MODELS_BY_NAME.get(name)
        if model is None:
            raise InvalidForModel(f"{PROVIDER} has no model {name!r}.", provider=PROVIDER)
        return model

    async def _post(
        self, path: str, form: Form, price: float | None, details: dict[str, Any]
    ) -> GenerateResult:
        response, image = await self._http.call("POST", path, read_answer, files=form)
        finish_reason = response.headers.get(FINISH_REASON_HEADER)
        details = details | {"finish_reason": finish_reason}
        vendor_seed = response.headers.get("seed")
        if vendor_seed is not None and vendor_seed.isdigit():
            details["vendor_seed"] = int(vendor_seed)
        return GenerateResult(
            image=image, cost_usd=price, details=details, encoded=response.content
        )


async def read_answer(response: httpx.Response) -> tuple[httpx.Response, Image.Image]:
    """The answer and its image, read within its attempt so that one with no usable image is
    retried; ModerationBlocked when the content filter replaced it."""
    finish_reason = response.headers.get(FINISH_REASON_HEADER)
    extensions = {"provider": PROVIDER, "provider_code": finish_reason}
    if finish_reason == "CONTENT_FILTERED":
        raise ModerationBlocked(
            "Stability's content filter replaced the image (finish-reason CONTENT_FILTERED).",
            **extensions,
        )
    if not response.headers.get("content-type", "").startswith("image/"):
        raise ProviderMalformedResponse(
            f"Stability answered {response.headers.get('content-type')!r}, not an image.",
            **extensions,
        )
    image = await run_cpu(decode_vendor_image, response.content, PROVIDER, MAX_OUTPUT_PIXELS, LABEL)
    return response, image


def vendor_seed(seed: int) -> int:
    """Darkroom's 32-bit seed within the API's range (0 would mean "pick one")."""
    return seed % (MAX_VENDOR_SEED + 1)


def prompt_fields(
    model: StabilityModel, prompt: str, negative_prompt: str | None, seed: int
) -> Form:
    """The prompt, negative prompt (where the model takes one), seed, output format and, for
    the SD 3.5 endpoint, the model: the fields every generation sends."""
    form: Form = {
        "prompt": (None, prompt),
        "seed": (None, str(vendor_seed(seed))),
        "output_format": (None, "png"),
    }
    if negative_prompt and model.negative_prompt:
        form["negative_prompt"] = (None, negative_prompt)
    if model.sd3_model:
        form["model"] = (None, model.sd3_model)
    return form


def edit_request(model: StabilityModel, call: EditCall) -> tuple[str, Form, float | None, str]:
    """The endpoint path, form, price and operation name of one edit."""
    image = image_file(call.image)
    if model.operation == "generate":
        if call.mask is not None:
            return inpaint_request(model, call, image)
        if not model.image_to_image:
            raise InvalidForModel(
                f"{PROVIDER}/{model.name} edits only with a mask (inpainting).", provider=PROVIDER
            )
        form = prompt_fields(model, call.prompt, call.negative_prompt, call.seed)
        strength = call.strength if call.strength is not None else call.variation
        form["image"] = image
        form["strength"] = (None, f"{strength if strength is not None else DEFAULT_STRENGTH:g}")
        if model.sd3_model:
            form["mode"] = (None, "image-to-image")
        return model.path, form, model.price_usd, "image-to-image"
    seed = (None, str(vendor_seed(call.seed)))
    if model.operation == "erase":
        if call.mask is None:
            raise InvalidForModel(f"{PROVIDER}/erase needs a mask.", provider=PROVIDER)
        form = {"image": image, "mask": mask_file(call.mask, call.image), "seed": seed}
    elif model.operation == "outpaint":
        form = {"image": image, "prompt": (None, call.prompt), "seed": seed}
        form |= {side: (None, str(pixels)) for side, pixels in outpaint_sides(call).items()}
    elif model.operation == "upscale-conservative":
        form = {"image": image, "prompt": (None, call.prompt), "seed": seed}
        if call.negative_prompt:
            form["negative_prompt"] = (None, call.negative_prompt)
    else:
        form = {"image": image}
    form["output_format"] = (None, "png")
    return model.path, form, model.price_usd, model.operation


def inpaint_request(
    model: StabilityModel, call: EditCall, image: tuple[str, bytes, str]
) -> tuple[str, Form, float | None, str]:
    """An edit with a mask: the inpaint endpoint, whatever the model (its price is unknown)."""
    assert call.mask is not None
    form: Form = {
        "image": image,
        "mask": mask_file(call.mask, call.image),
        "prompt": (None, call.prompt),
        "seed": (None, str(vendor_seed(call.seed))),
        "output_format": (None, "png"),
    }
    if call.negative_prompt:
        form["negative_prompt"] = (None, call.negative_prompt)
    return "v2beta/stable-image/edit/inpaint", form, None, "inpaint"


def image_file(image: InputImage) -> tuple[str, bytes, str]:
    """A file part for an input image: its own bytes."""
    return f"image.{image.format}", image.data, input_media_type(image, PROVIDER)


def mask_file(mask: InputImage, source: InputImage) -> tuple[str, bytes, str]:
    """Darkroom's mask (fully transparent = change) as Stability's (white = change, black =
    keep), a grayscale PNG the size of the source."""
    pixels = mask.decode()
    if pixels.size != (source.width, source.height):
        pixels = pixels.resize((source.width, source.height), Image.Resampling.NEAREST)
    if pixels.mode == "RGBA":
        alpha = pixels.getchannel("A")
        converted = alpha.point(lambda value: 255 if value == 0 else 0)
    else:
        # A mask without alpha marks nothing as transparent, so nothing would change.
        converted = Image.new("L", pixels.size, 0)
    return "mask.png", png_bytes(converted), "image/png"


def outpaint_sides(call: EditCall) -> dict[str, int]:
    """Pixels to add on each side so the source, unscaled and centred, takes the call's
    aspect ratio. InvalidForModel when the source already has it."""
    width, height = call.image.width, call.image.height
    target = call.width / call.height
    if target > width / height:
        extra = round(height * target) - width
        sides = {"left": extra // 2, "right": extra - extra // 2, "up": 0, "down": 0}
    else:
        extra = round(width / target) - height
        sides = {"left": 0, "right": 0, "up": extra // 2, "down": extra - extra // 2}
    if not any(sides.values()):
        raise InvalidForModel(
            "The source already has the requested aspect ratio; nothing to outpaint.",
            provider=PROVIDER,
        )
    if max(sides.values()) > MAX_OUTPAINT_PIXELS:
        raise InvalidForModel(
            f"Outpainting grows a side by at most {MAX_OUTPAINT_PIXELS} pixels; ask for an "
            "aspect ratio nearer the source's.",
            provider=PROVIDER,
        )
    return sides


def png_bytes(image: Image.Image) -> bytes:
    """An image encoded as PNG."""
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()
