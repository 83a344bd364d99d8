"""The `openai` provider: OpenAI's GPT Image models over the Images API, `POST /images/generations`
(JSON) and `POST /images/edits` (multipart, several images, a mask), spoken through the shared
vendor transport.

The request building and the answer reading here are OpenAI's wire protocol, and the
`openai_compatible` provider reuses them for any server that speaks it. The installed `openai`
package (3.57.0: `types/image_generate_params.py`, `types/image_edit_params.py`,
`types/images_response.py`, `resources/images.py`) is the reference for fields and values.
"""

import asyncio
import io
from dataclasses import dataclass
from typing import Any, Unpack

import httpx
import orjson
import pybase64
from PIL import Image

from app.cpu import run_cpu
from app.errors import (
    InvalidForModel,
    ModerationBlocked,
    ProviderError,
    ProviderMalformedResponse,
    ProviderQuotaExhausted,
)
from app.imaging.codecs import LOSSY_QUALITY
from app.providers.base import (
    EditCall,
    GenerateCall,
    GenerateResult,
    InputImage,
    ModelCapabilities,
    ModelSpec,
    RenderOptions,
)
from app.providers.http_vendor import HTTPVendor
from app.providers.transport import (
    TransportOptions,
    VendorHTTP,
    decode_vendor_image,
    error_for_status,
    input_media_type,
)

PROVIDER = "openai"
DEFAULT_BASE_URL = "https://api.openai.com/v1"

# Sizes: the standard sizes that image_generate_params.py (openai 3.57.0) says every GPT image
# model takes. gpt-image-2 and gpt-image-2.5 also take any WxH in multiples of 16 up to
# 3840x2160, which ModelCapabilities cannot express yet.
STANDARD_SIZES = ((1024, 1024), (1536, 1024), (1024, 1536))

# The largest image the API documents (3840x2160); anything bigger is not a real answer.
MAX_OUTPUT_PIXELS = 3840 * 2160

# image_edit_params.py: "You can provide up to 16 images", the source and 15 references.
MAX_EDIT_IMAGES = 16

# Model ids from openai 3.57.0, types/image_model.py (ImageModel), checked against the `model`
# docs in types/image_generate_params.py on 2026-11-28. Left out: gpt-image-1 (shut down
# 2026-10-23), dall-e-2 and dall-e-3 (retired 2026-05-12), and chatgpt-image-latest (a moving
# alias whose limits the types do not state). The middle column is transparent-background
# support: the types name only the gpt-image-2.5 family; for gpt-image-2 it is "in preview".
MODEL_TABLE: tuple[tuple[str, bool, str], ...] = (
    ("gpt-image-2", False, "OpenAI GPT Image 2: strong prompt following and text rendering."),
    ("gpt-image-2-2026-04-21", False, "GPT Image 2 pinned to its 2026-04-21 snapshot."),
    ("gpt-image-2.5-flare", True, "OpenAI GPT Image 2.5 Flare: the faster 2.5 model."),
    ("gpt-image-2.5-flare-2026-09-08", True, "GPT Image 2.5 Flare pinned to 2026-09-08."),
    ("gpt-image-2.5-sunburst", True, "OpenAI GPT Image 2.5 Sunburst: slower, finer detail."),
    ("gpt-image-2.5-sunburst-2026-09-08", True, "GPT Image 2.5 Sunburst pinned to 2026-09-08."),
    ("gpt-image-2.6-flare", False, "OpenAI GPT Image 2.6 Flare: the faster 2.6 model."),
    ("gpt-image-2.6-sunburst", False, "OpenAI GPT Image 2.6 Sunburst: slower, finer detail."),
    ("gpt-image-1.5", False, "OpenAI GPT Image 1.5, the generation before GPT Image 2."),
    ("gpt-image-1-mini", False, "OpenAI GPT Image 1 mini: low cost; OpenAI marks it deprecated."),
)

# image_edit_params.py: `input_fidelity` "Supports high and low on gpt-image-1.5;
# gpt-image-1-mini supports only low. For gpt-image-2, omit this parameter."
INPUT_FIDELITY = {"gpt-image-1.5": ("high", "low"), "gpt-image-1-mini": ("low",)}


@dataclass(frozen=True)
class TokenPrices:
    """A model's list prices in USD per million tokens."""

    text_input: float
    image_input: float
    image_output: float


# From OpenAI's model pages, developers.openai.com/api/docs/models/<id> (as indexed, read
# 2026-11-28). Only models whose page showed prices are here: the others cost None, not a guess.
TOKEN_PRICES_CHECKED_ON = "2026-11-28"
TOKEN_PRICES = {
    "gpt-image-2.6-sunburst": TokenPrices(text_input=5.00, image_input=8.00, image_output=30.00),
    "gpt-image-1-mini": TokenPrices(text_input=2.00, image_input=2.50, image_output=8.00),
}

PRICING = (
    "Billed per token (text and image input, image output), not per image. Each job's cost is "
    "computed from the usage OpenAI reports, at list token prices read "
    f"{TOKEN_PRICES_CHECKED_ON} where known ({', '.join(sorted(TOKEN_PRICES))}); for the "
    "other models it is null. Prices by quality are estimates from OpenAI's output tokens per "
    "image at each quality, from the square to the largest standard size."
)

# Darkroom's quality tiers as OpenAI's `quality` (ImageGenerateParams.quality).
QUALITY_LEVELS = (("draft", "low"), ("standard", "medium"), ("high", "high"), ("auto", "auto"))

# Image output tokens per image by quality, at 1024x1024 and at 1536x1024 or 1024x1536, from
# the table in OpenAI's image generation guide (GPT Image); what a job's estimate is made of.
OUTPUT_TOKENS = {"low": (272, 408), "medium": (1056, 1584), "high": (4160, 6240)}


def quality_prices(prices: TokenPrices | None) -> tuple[tuple[str, tuple[float, float]], ...]:
    """Each tier's (lowest, highest) USD per image, from its output tokens at the square and
    the largest standard size; `auto` spans low to high. Empty without token prices."""
    if prices is None:
        return ()

    def usd(tokens: int) -> float:
        return round(tokens * prices.image_output / 1_000_000, 6)

    ranges = {
        tier: (usd(OUTPUT_TOKENS[native][0]), usd(OUTPUT_TOKENS[native][1]))
        for tier, native in QUALITY_LEVELS
        if native in OUTPUT_TOKENS
    }
    ranges["auto"] = (ranges["draft"][0], ranges["high"][1])
    return tuple(ranges.items())


def prompt_token_price(prices: TokenPrices | None) -> float | None:
    """USD per token of prompt text, where the model's token prices are known."""
    return None if prices is None else prices.text_input / 1_000_000


MODELS = [
    ModelSpec(
        provider=PROVIDER,
        name=name,
        description=f"{description} No seed: reruns of one prompt differ.",
        capabilities=ModelCapabilities(
            modes=("generate", "edit"),
            sizes=STANDARD_SIZES,
            transparent_background=transparent,
            # The Images API takes neither a seed nor a negative prompt.
            seed=False,
            negative_prompt=False,
            mask=True,
            max_references=MAX_EDIT_IMAGES - 1,
            max_n=10,
            # ImageGenerateParams.n: "The number of images to generate. Must be between 1 and 10."
            images_per_call=10,
            quality_levels=QUALITY_LEVELS,
        ),
        # OpenAI bills these models per token, so no fixed per-image price exists: the cost of
        # each image comes from its usage, and its estimate from the quality asked for.
        price_per_image_usd=None,
        prices_by_quality=quality_prices(TOKEN_PRICES.get(name)),
        prompt_token_price_usd=prompt_token_price(TOKEN_PRICES.get(name)),
    )
    for name, transparent, description in MODEL_TABLE
]


# Error codes OpenAI uses when its safety system refuses a prompt or the image it made.
MODERATION_CODES = {
    "moderation_blocked",
    "content_policy_violation",
    "image_content_policy_violation",
}


# --- The wire protocol, shared with any OpenAI-compatible server ---------------------------


def output_fields(output_format: str, compression: int | None = None) -> dict[str, Any]:
    """`output_format`, and for JPEG and WebP (the only formats that take it)
    `output_compression`: the job's, else Darkroom's own lossy quality. OpenAI's 0-100 reads
    like an encoder's quality, 100 (its default) being the least compressed."""
    if output_format == "png":
        return {"output_format": "png"}
    quality = LOSSY_QUALITY if compression is None else compression
    return {"output_format": output_format, "output_compression": quality}


def render_fields(render: RenderOptions) -> dict[str, str]:
    """`quality` (the job's tier as OpenAI's level) and `background`, always sent, so that a
    change of OpenAI's defaults cannot change our results."""
    return {
        "quality": dict(QUALITY_LEVELS)[render.quality],
        "background": render.background,
    }


def generation_body(call: GenerateCall, output_format: str = "png", **extra: Any) -> dict[str, Any]:
    """The JSON body of one generation, per ImageGenerateParams: one image at the call's size in
    `output_format` (lossless PNG unless the caller asks for the format the job stores, so that
    an image already the right size can be stored as sent), with the call's quality, background
    and moderation."""
    render = call.render
    return (
        {
            "model": call.model,
            "prompt": call.prompt,
            "n": 1,
            "size": f"{call.width}x{call.height}",
            "moderation": render.moderation,
        }
        | render_fields(render)
        | output_fields(output_format, render.output_compression)
        | extra
    )


FormFields = dict[str, str]
FormFiles = list[tuple[str, tuple[str, bytes, str]]]


def edit_form(
    call: EditCall, vendor: str, output_format: str = "png", **extra: str
) -> tuple[FormFields, FormFiles]:
    """The multipart form of one edit, as the official client sends it (resources/images.py,
    `extract_files` with array format "brackets"): the source alone as an `image` part, or the
    source then each reference as repeated `image[]` parts; the mask as a `mask` PNG with alpha
    (OpenAI applies it to the first image); the text fields, the image in `output_format`
    included, as form fields. What must stay fixed and the roles of the references are in the
    prompt, which the prompt builder wrote."""
    images = [call.image, *(reference.image for reference in call.references)]
    image_part = "image" if len(images) == 1 else "image[]"
    files: FormFiles = [
        (image_part, upload(f"image-{index}", image, vendor)) for index, image in enumerate(images)
    ]
    if call.mask is not None:
        files.append(("mask", ("mask.png", mask_png(call.mask, call.image), "image/png")))
    fields = {
        "model": call.model,
        "prompt": call.prompt,
        "n": "1",
        "size": f"{call.width}x{call.height}",
    } | render_fields(call.render)
    compression = call.render.output_compression
    fields |= {
        name: str(value) for name, value in output_fields(output_format, compression).items()
    }
    return fields | extra, files


def upload(stem: str, image: InputImage, vendor: str) -> tuple[str, bytes, str]:
    """A file part for an input image, named and typed by its real format."""
    media_type = input_media_type(image, vendor)
    extension = "jpg" if image.format == "jpeg" else image.format
    return f"{stem}.{extension}", image.data, media_type


def mask_png(mask: InputImage, source: InputImage) -> bytes:
    """The mask as OpenAI takes it: a PNG with an alpha channel at the source's size. A mask that
    already is one is sent as given."""
    if mask.format == "png" and (mask.width, mask.height) == (source.width, source.height):
        with Image.open(io.BytesIO(mask.data)) as opened:
            if opened.mode in ("RGBA", "LA") or "transparency" in opened.info:
                return mask.data
    image = mask.decode().convert("RGBA")
    if image.size != (source.width, source.height):
        image = image.resize((source.width, source.height), Image.Resampling.NEAREST)
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def vendor_error(vendor: str, label: str, response: httpx.Response) -> ProviderError:
    """The typed failure for an error answer in OpenAI's `{"error": {"message", "type", "param",
    "code"}}` shape (any other body still maps by status): an exhausted quota and a moderation
    refusal are final; the rest goes by status, naming the parameter OpenAI blamed."""
    error = _error_object(response)
    status = response.status_code
    message = str(error.get("message") or "no error message")
    code = None if error.get("code") is None else str(error["code"])
    param = None if error.get("param") is None else str(error["param"])
    extensions = {
        name: value
        for name, value in {
            "provider": vendor,
            "provider_status": status,
            "provider_code": code,
            "provider_request_id": response.headers.get("x-request-id"),
        }.items()
        if value
    }
    if code == "insufficient_quota":
        return ProviderQuotaExhausted(f"{label}: {message}", **extensions)
    if code in MODERATION_CODES:
        return ModerationBlocked(f"{label}'s safety system: {message}", **extensions)
    if param:
        message = f"{message} (parameter {param!r})"
    return error_for_status(vendor, status, message, label=label, **extensions)


def _error_object(response: httpx.Response) -> dict[str, Any]:
    try:
        error = response.json().get("error")
    except (ValueError, AttributeError):
        error = None
    return error if isinstance(error, dict) else {}


@dataclass(frozen=True)
class ImagesAnswer:
    """What an images endpoint made: the first image's bytes and what it said about it."""

    data: bytes
    usage: dict[str, Any] | None
    revised_prompt: str | None


async def read_images_answer(
    http: VendorHTTP, label: str, response: httpx.Response, count: int = 1
) -> list[ImagesAnswer]:
    """The `count` images of an ImagesResponse: each `b64_json`, or for servers that answer with
    links, `url`, downloaded under the transport's address rules and limits. Each carries the
    response's usage, which covers them all."""
    extensions = {"provider": http.vendor}
    if request_id := response.headers.get("x-request-id"):
        extensions["provider_request_id"] = request_id
    try:
        payload = orjson.loads(response.content)
    except ValueError as exc:
        raise ProviderMalformedResponse(f"{label}'s answer is not JSON.", **extensions) from exc
    data = payload.get("data") if isinstance(payload, dict) else None
    entries = data[:count] if isinstance(data, list) else []
    if len(entries) < count:
        message = f"{label}'s answer holds {len(entries)} of the {count} images asked for."
        raise ProviderMalformedResponse(message, **extensions)
    usage = payload.get("usage")
    usage = usage if isinstance(usage, dict) else None
    return [await _read_image_entry(http, label, entry, usage, extensions) for entry in entries]


async def _read_image_entry(
    http: VendorHTTP,
    label: str,
    entry: Any,
    usage: dict[str, Any] | None,
    extensions: dict[str, str],
) -> ImagesAnswer:
    entry = entry if isinstance(entry, dict) else {}
    encoded, link = entry.get("b64_json"), entry.get("url")
    if isinstance(encoded, str) and encoded:
        try:
            image = pybase64.b64decode(encoded, validate=True)
        except ValueError as exc:  # binascii.Error, or a character outside ASCII
            message = f"{label}'s image is not valid base64."
            raise ProviderMalformedResponse(message, **extensions) from exc
    elif isinstance(link, str) and link:
        image = await http.download(link)
    else:
        message = f"{label}'s answer has an image with neither b64_json nor url."
        raise ProviderMalformedResponse(message, **extensions)
    revised = entry.get("revised_prompt")
    return ImagesAnswer(image, usage, revised if isinstance(revised, str) else None)


class ImagesEndpoints:
    """OpenAI's image endpoints at one base URL, for any provider that speaks them. An answer
    is read and its image decoded within its attempt, so a malformed one is retried."""

    def __init__(self, http: VendorHTTP, label: str) -> None:
        self.http = http
        self.label = label

    async def generate(self, body: dict[str, Any]) -> list[tuple[Image.Image, ImagesAnswer]]:
        """`POST /images/generations` with a JSON body: its `n` images."""

        async def images(response: httpx.Response) -> list[tuple[Image.Image, ImagesAnswer]]:
            answers = await read_images_answer(self.http, self.label, response, body["n"])
            return list(await asyncio.gather(*(self._decoded(answer) for answer in answers)))

        return await self.http.call("POST", "images/generations", images, json=body)

    async def edit(self, fields: FormFields, files: FormFiles) -> tuple[Image.Image, ImagesAnswer]:
        """`POST /images/edits` as multipart form data."""
        return await self.http.call("POST", "images/edits", self._image, data=fields, files=files)

    async def _image(self, response: httpx.Response) -> tuple[Image.Image, ImagesAnswer]:
        (answer,) = await read_images_answer(self.http, self.label, response)
        return await self._decoded(answer)

    async def _decoded(self, answer: ImagesAnswer) -> tuple[Image.Image, ImagesAnswer]:
        image = await run_cpu(
            decode_vendor_image, answer.data, self.http.vendor, MAX_OUTPUT_PIXELS, self.label
        )
        return image, answer


def result_details(answer: ImagesAnswer) -> dict[str, Any]:
    """What the vendor reported about an image, for the job record."""
    details: dict[str, Any] = {}
    if answer.usage is not None:
        details["usage"] = answer.usage
    if answer.revised_prompt:
        details["revised_prompt"] = answer.revised_prompt
    return details


# --- The openai provider -------------------------------------------------------------------


class OpenAIProvider(HTTPVendor):
    """OpenAI's image models, available when an API key is configured."""

    name = PROVIDER
    key_label = "OpenAI API key"
    enabled_by = "DARKROOM_OPENAI_API_KEY"
    default_base_url = DEFAULT_BASE_URL
    pricing = PRICING

    def __init__(
        self,
        api_key: str | None,
        base_url: str | None = None,
        **options: Unpack[TransportOptions],
    ) -> None:
        super().__init__(api_key, base_url, **options)
        self._endpoints = ImagesEndpoints(self._http, "OpenAI")

    def read_error(self, response: httpx.Response) -> ProviderError:
        """OpenAI's error answers (see `vendor_error`)."""
        return vendor_error(PROVIDER, "OpenAI", response)

    def models(self) -> list[ModelSpec]:
        """The GPT image models."""
        return list(MODELS)

    async def generate(self, call: GenerateCall) -> GenerateResult:
        """One image at the call's size, in the format the job stores. The API takes no seed or
        negative prompt, so neither is sent (the capabilities say so)."""
        (result,) = await self.generate_many(call, 1)
        return result

    async def generate_many(self, call: GenerateCall, count: int) -> list[GenerateResult]:
        """`count` images of one call (`n`), its cost shared evenly between them."""
        self.check_configured()
        body = generation_body(call, call.output_format, n=count)
        made = await self._endpoints.generate(body)
        return [
            result_of(call.model, image, answer, count, first=position == 0)
            for position, (image, answer) in enumerate(made)
        ]

    async def edit(self, call: EditCall) -> GenerateResult:
        """The source edited as the prompt says, within the mask if there is one, steered by
        up to 15 reference images. `strength` and `variation` have no OpenAI parameter; the
        model follows the prompt."""
        self.check_configured()
        if len(call.references) >= MAX_EDIT_IMAGES:
            raise InvalidForModel(
                f"OpenAI edits take at most {MAX_EDIT_IMAGES - 1} reference images.",
                provider=PROVIDER,
            )
        fields, files = edit_form(call, PROVIDER, call.output_format, **input_fidelity(call))
        image, answer = await self._endpoints.edit(fields, files)
        return result_of(call.model, image, answer)


def result_of(
    model: str,
    image: Image.Image,
    answer: ImagesAnswer,
    images_in_call: int = 1,
    *,
    first: bool = True,
) -> GenerateResult:
    """An image OpenAI made, with the bytes it sent, its share of the call's cost and what it
    reported. The call's usage covers all its images, so it is recorded with the first alone
    (sums over a job's outputs stay right); the others say how many the call made."""
    cost = cost_of(model, answer.usage)
    share = None if cost is None else cost / images_in_call
    details = result_details(answer)
    if not first:
        details.pop("usage", None)
    if images_in_call > 1:
        details["images_in_call"] = images_in_call
    return GenerateResult(image, share, details, encoded=answer.data)


def input_fidelity(call: EditCall) -> dict[str, str]:
    """`input_fidelity` for models that take it: high when something must stay as it is (a
    face, a product's angle), which is what the parameter is for; else the model's default."""
    levels = INPUT_FIDELITY.get(call.model, ())
    if call.keep and "high" in levels:
        return {"input_fidelity": "high"}
    return {}


def cost_of(model: str, usage: object) -> float | None:
    """What one image cost, from the usage OpenAI reported and the model's token prices; None
    when either is unknown."""
    prices = TOKEN_PRICES.get(model)
    if prices is None or not isinstance(usage, dict):
        return None
    try:
        inputs = usage["input_tokens_details"]
        text_tokens, image_tokens = int(inputs["text_tokens"]), int(inputs["image_tokens"])
        output_tokens = int(usage["output_tokens"])
    except (KeyError, TypeError, ValueError):
        return None
    total = (
        text_tokens * prices.text_input
        + image_tokens * prices.image_input
        + output_tokens * prices.image_output
    )
    return total / 1_000_000
