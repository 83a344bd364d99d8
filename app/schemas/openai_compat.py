"""OpenAI's Images API contract, as the official `openai` client sends and reads it: the
request bodies of generations, edits and variations, the ImagesResponse, and OpenAI's error
object. Field names and values follow OpenAI's; what Darkroom does with each is described."""

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from app.schemas.common import SIZE_WORDS, worded

OpenAIOutputFormat = Literal["png", "webp", "jpeg"]
# OpenAI's levels above `high` (`xhigh`, `max`) have no Darkroom tier: refused as invalid.
OpenAIQuality = Literal["low", "medium", "high", "auto", "standard", "hd"]
ResponseFormat = Literal["url", "b64_json"]

# `auto` or `WIDTHxHEIGHT`; Darkroom then checks each side is within 64..4096 pixels.
SIZE_PATTERN = r"^(auto|[1-9][0-9]{1,3}[xX][1-9][0-9]{1,3})$"
OpenAISize = Annotated[str, Field(pattern=SIZE_PATTERN), worded(f"`auto` or {SIZE_WORDS}")]

PROMPT_FIELD = Field(
    min_length=1,
    max_length=32000,
    description="What the image should show (Darkroom's brief).",
    examples=["a ceramic coffee mug on a walnut desk, morning light"],
)
MODEL_FIELD = Field(
    None,
    description=(
        "A Darkroom model id (`provider/model`, see GET /v1/models), or a bare OpenAI model name "
        "such as `gpt-image-2`, which means `openai/<name>` when this server serves it and the "
        "server's default model otherwise. Omitted: the server's default model."
    ),
    examples=["local/draft"],
)
N_FIELD = Field(None, ge=1, le=10, description="How many images to make, 1 to 10; 1 if omitted.")
RESPONSE_FORMAT_FIELD = Field(
    None,
    description=(
        "`b64_json` (the default) returns the image bytes base64-encoded; `url` returns a link to "
        "the stored asset instead."
    ),
)
QUALITY_FIELD = Field(
    None,
    description="Passed on as Darkroom's quality tier: `low` is `draft`, `medium` (and DALL-E's "
    "`standard`) is `standard`, `high` (and `hd`) is `high`, `auto` (the default) is `auto`; "
    "each model maps the tier to its own control (OpenAI models get the OpenAI level back). "
    "OpenAI's `xhigh` and `max` are not offered. Echoed in the response.",
)
BACKGROUND_FIELD = Field(
    None,
    description="`transparent` (with png or webp output, on models that can make alpha; "
    "others are refused naming those that can), `opaque`, or `auto` (the default).",
)
COMPRESSION_FIELD = Field(
    None,
    ge=0,
    le=100,
    description="Encoder quality of webp and jpeg images, 0 to 100 (100 the least compressed); "
    "passed on to the model and used when Darkroom encodes. Darkroom's default if omitted.",
)
MODERATION_FIELD = Field(
    None,
    description="`low` or `auto` (the default): passed on to models whose vendor has a "
    "moderation level (OpenAI's generations).",
)
USER_FIELD = Field(
    None,
    max_length=256,
    description="Your identifier for the end user; recorded in the job's metadata as `user`.",
)


class ImageGenerationRequest(BaseModel):
    """OpenAI's `POST /images/generations` body."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "example": {
                "model": "local/draft",
                "prompt": "a ceramic coffee mug on a walnut desk, morning light",
                "n": 1,
                "size": "1024x1024",
                "output_format": "png",
            }
        },
    )

    prompt: str = PROMPT_FIELD
    model: str | None = MODEL_FIELD
    n: int | None = N_FIELD
    size: OpenAISize | None = Field(
        None,
        description=(
            "Exact output size `WIDTHxHEIGHT`, 64 to 4096 pixels a side, or `auto` (the model's "
            "default size). Any size in range is made exactly, not only OpenAI's standard ones."
        ),
        examples=["1024x1024"],
    )
    quality: OpenAIQuality | None = QUALITY_FIELD
    background: Literal["transparent", "opaque", "auto"] | None = BACKGROUND_FIELD
    output_format: OpenAIOutputFormat | None = Field(
        None, description="Encoding of the images: png (the default), webp or jpeg."
    )
    output_compression: int | None = COMPRESSION_FIELD
    response_format: ResponseFormat | None = RESPONSE_FORMAT_FIELD
    moderation: Literal["low", "auto"] | None = MODERATION_FIELD
    user: str | None = USER_FIELD
    safety_identifier: str | None = Field(
        None, max_length=256, description="Like `user`, and preferred over it when both are given."
    )
    stream: Literal[False] | None = Field(
        None, description="Streaming is not offered; only `false` (or omitting it) is accepted."
    )


class ImageEditFields(BaseModel):
    """The text fields of OpenAI's multipart `POST /images/edits`."""

    model_config = ConfigDict(extra="forbid")

    prompt: str = PROMPT_FIELD
    model: str | None = MODEL_FIELD
    n: int | None = N_FIELD
    size: OpenAISize | None = Field(
        None,
        description="Output size `WIDTHxHEIGHT`, or `auto` (the default) for the first image's "
        "size.",
        examples=["1024x1024"],
    )
    quality: OpenAIQuality | None = QUALITY_FIELD
    background: Literal["transparent", "opaque", "auto"] | None = BACKGROUND_FIELD
    output_format: OpenAIOutputFormat | None = Field(
        None, description="Encoding of the images: png (the default), webp or jpeg."
    )
    output_compression: int | None = COMPRESSION_FIELD
    input_fidelity: Literal["high", "low"] | None = Field(
        None, description="Accepted for compatibility; not applied."
    )
    response_format: ResponseFormat | None = RESPONSE_FORMAT_FIELD
    moderation: Literal["low", "auto"] | None = MODERATION_FIELD
    user: str | None = USER_FIELD
    safety_identifier: str | None = Field(
        None, max_length=256, description="Like `user`, and preferred over it when both are given."
    )
    stream: Literal["false"] | None = Field(
        None, description="Streaming is not offered; only `false` (or omitting it) is accepted."
    )


class ImageVariationFields(BaseModel):
    """The text fields of OpenAI's multipart `POST /images/variations`."""

    model_config = ConfigDict(extra="forbid")

    model: str | None = MODEL_FIELD
    n: int | None = N_FIELD
    size: OpenAISize | None = Field(
        None,
        description="Output size `WIDTHxHEIGHT`, or `auto` (the default) for the image's size.",
        examples=["1024x1024"],
    )
    response_format: ResponseFormat | None = RESPONSE_FORMAT_FIELD
    user: str | None = USER_FIELD


class ImageData(BaseModel):
    """One image of an ImagesResponse."""

    b64_json: str | None = Field(
        None, description="The image bytes, base64-encoded (unless `response_format=url`)."
    )
    url: str | None = Field(
        None,
        description="Where to download the image (with `response_format=url`).",
        examples=["https://darkroom.example/v1/assets/ast_01JD7Z8Q3N5X2W1V0T9S8R7Q6P/content"],
    )
    revised_prompt: str | None = Field(
        None, description="The prompt the model was given, where the model reported it."
    )


class UsageInputTokensDetails(BaseModel):
    """Input tokens by kind."""

    image_tokens: int = Field(description="Image tokens in the input.")
    text_tokens: int = Field(description="Text tokens in the input.")


class UsageOutputTokensDetails(BaseModel):
    """Output tokens by kind."""

    image_tokens: int = Field(description="Image tokens generated.")
    text_tokens: int = Field(description="Text tokens generated.")


class ImageUsage(BaseModel):
    """Token usage summed over the images, for models billed by token that report it."""

    input_tokens: int = Field(description="Tokens (images and text) in the input.")
    input_tokens_details: UsageInputTokensDetails = Field(description="Input tokens by kind.")
    output_tokens: int = Field(description="Tokens generated.")
    total_tokens: int = Field(description="Input plus output tokens.")
    output_tokens_details: UsageOutputTokensDetails | None = Field(
        None, description="Output tokens by kind, where reported."
    )


class ImagesResponse(BaseModel):
    """OpenAI's ImagesResponse: the images of one finished Darkroom job."""

    model_config = ConfigDict(
        json_schema_extra={
            "example": {
                "created": 1767225600,
                "data": [{"b64_json": "iVBORw0KGgoAAAANSUhEUgAA..."}],
                "background": "opaque",
                "output_format": "png",
                "size": "1024x1024",
            }
        }
    )

    created: int = Field(description="When the images were made, as a Unix timestamp.")
    data: list[ImageData] = Field(description="The images, in order.")
    background: Literal["transparent", "opaque"] | None = Field(
        None, description="The background of the images."
    )
    output_format: OpenAIOutputFormat | None = Field(None, description="Encoding of the images.")
    quality: Literal["low", "medium", "high"] | None = Field(
        None, description="The quality asked for, when it is one OpenAI reports."
    )
    size: str | None = Field(None, description="The images' size, `WIDTHxHEIGHT`.")
    usage: ImageUsage | None = Field(None, description="Token usage, where the model reports it.")


class OpenAIErrorBody(BaseModel):
    """What went wrong, in OpenAI's terms."""

    message: str = Field(description="What went wrong, for a person.")
    type: str = Field(
        description="The kind of error (`invalid_request_error`, `server_error`, ...).",
        examples=["invalid_request_error"],
    )
    param: str | None = Field(None, description="The request field at fault, if one is.")
    code: str | None = Field(None, description="A machine-readable code, if any.")


class OpenAIError(BaseModel):
    """OpenAI's error object: every error of the OpenAI-compatible routes has this shape."""

    model_config = ConfigDict(
        json_schema_extra={
            "example": {
                "error": {
                    "message": "size: each side must be between 64 and 4096 pixels",
                    "type": "invalid_request_error",
                    "param": "size",
                    "code": "invalid_value",
                }
            }
        }
    )

    error: OpenAIErrorBody = Field(description="The error.")
