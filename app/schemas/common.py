"""What every part of the public contract shares: the problem object, formats, limits, caller
metadata and health."""

import json
import math
import re
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    ValidationError,
    ValidatorFunctionWrapHandler,
    WrapValidator,
    field_validator,
)
from pydantic_core import PydanticCustomError

from app.imaging.geometry import parse_aspect_ratio, parse_size

OutputFormat = Literal["png", "jpeg", "webp"]
# Darkroom's quality tiers, each mapped per model to its native control (see GET /v1/models).
Quality = Literal["draft", "standard", "high", "auto"]
Background = Literal["auto", "opaque", "transparent"]
# Formats that carry an alpha channel, so a transparent background survives encoding.
ALPHA_FORMATS = ("png", "webp")
# What stored assets may be: images, and the zip of an export's bundle.
AssetFormat = Literal["png", "jpeg", "webp", "avif", "zip"]

MAX_SEED = 2**32 - 1
MIN_SIDE, MAX_SIDE = 64, 4096
MIN_ASPECT, MAX_ASPECT = 1 / 4, 4
MAX_METADATA_BYTES = 16 * 1024
MAX_METADATA_DEPTH = 16
MAX_FALLBACK_MODELS = 3
# A side from 64 to 4096, as a regular expression, so the document states the range too.
SIDE_PATTERN = "(6[4-9]|[7-9][0-9]|[1-9][0-9]{2}|[1-3][0-9]{3}|40[0-8][0-9]|409[0-6])"
SIZE_PATTERN = f"^{SIDE_PATTERN}[xX]{SIDE_PATTERN}$"
MAX_COMPARED_MODELS = 4
ASPECT_RATIO_PATTERN = r"^[1-9][0-9]{0,3}:[1-9][0-9]{0,3}$"
# What the size and aspect ratio fields take, in words (pydantic quotes the pattern).
SIZE_WORDS = f"`WxH` in pixels, e.g. 1024x1024, with each side from {MIN_SIDE} to {MAX_SIDE}"
ASPECT_RATIO_WORDS = "`W:H` in whole numbers, e.g. 16:9"


def worded(accepted: str) -> WrapValidator:
    """A validator that reports a string not matching the field's pattern as "must be
    <accepted>", in words, where pydantic would quote the regular expression."""

    def validate(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        try:
            return handler(value)
        except ValidationError as exc:
            if exc.errors()[0]["type"] != "string_pattern_mismatch":
                raise
            raise PydanticCustomError(
                "string_pattern_mismatch", "must be {accepted}", {"accepted": accepted}
            ) from None

    return WrapValidator(validate)


def _size_in_range(value: str) -> str:
    width, height = parse_size(value)
    if not (MIN_SIDE <= width <= MAX_SIDE and MIN_SIDE <= height <= MAX_SIDE):
        raise ValueError(f"each side must be between {MIN_SIDE} and {MAX_SIDE} pixels")
    return f"{width}x{height}"


def _aspect_in_range(value: str) -> str:
    width, height = parse_aspect_ratio(value)
    if not MIN_ASPECT <= width / height <= MAX_ASPECT:
        raise ValueError("must be between 1:4 and 4:1")
    if max(width, height) > MAX_SIDE:
        raise ValueError(f"aspect ratio in lowest terms must fit in {MAX_SIDE} pixels a side")
    return f"{width}:{height}"


def _without_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


# White space as JSON Schema patterns (ECMAScript) read `\s`, spelled out so that the document's
# pattern and the validator agree on every character (Python's `\s` and `str.strip` differ).
WHITE_SPACE = r"\t\n\v\f\r \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
_SAYS_SOMETHING = re.compile(f"[^{WHITE_SPACE}]")


def _not_blank(value: str) -> str:
    if not _SAYS_SOMETHING.search(value):
        raise ValueError("must not be blank")
    return value


def _json_number(value: Any) -> Any:
    # Pydantic reads true and false as 1 and 0, and "3" as 3, where a number is asked for;
    # JSON does not: a number in a body is a JSON number.
    if isinstance(value, bool | str):
        raise ValueError("must be a JSON number")
    return value


# A whole number or a number as JSON writes them (3, 3.0, 0.5), never true, false or "3".
JsonNumber = BeforeValidator(_json_number)
JsonInt = Annotated[int, JsonNumber]
JsonFloat = Annotated[float, JsonNumber]


def _storable(value: dict[str, Any]) -> dict[str, Any]:
    check_metadata(value)
    return value


def exactly_one_of(*names: str) -> dict[str, Any]:
    """The JSON Schema of an object in which exactly one of these fields is given (not null),
    for the model validators that check it, so a generated client knows the rule too."""
    return {"oneOf": [_given(name) for name in names]}


def not_together(*names: str) -> dict[str, Any]:
    """The JSON Schema of an object in which these fields are not all given (not null). As
    `not` rather than `anyOf`, which client generators would read as a union of two types."""
    given = [_given(name) for name in names]
    return {"not": {"required": list(names), "allOf": given}}


def _given(name: str) -> dict[str, Any]:
    return {"required": [name], "properties": {name: {"not": {"type": "null"}}}}


# An exact output size, `WxH`, each side in range; normalized to a lower-case x.
Size = Annotated[
    str, Field(pattern=SIZE_PATTERN), worded(SIZE_WORDS), AfterValidator(_size_in_range)
]
# An output aspect ratio, `W:H`, of the range every job kind makes, reduced to lowest terms.
AspectRatio = Annotated[
    str,
    Field(pattern=ASPECT_RATIO_PATTERN),
    worded(f"{ASPECT_RATIO_WORDS}, from 1:4 to 4:1"),
    AfterValidator(_aspect_in_range),
]
# Text a model is given (a prompt, a negative prompt): no NUL characters. The patterns state
# the validators' rules in the document, so a generated client knows them too; the validators
# enforce them, with their own plain messages.
ModelText = Annotated[
    str, Field(json_schema_extra={"pattern": r"^[^\x00]*$"}), AfterValidator(_without_nul)
]
# A brief: text a model is given that says something (a character other than white space).
Brief = Annotated[
    str,
    Field(json_schema_extra={"pattern": f"^[^\\x00]*[^{WHITE_SPACE}\\x00][^\\x00]*$"}),
    AfterValidator(_without_nul),
    AfterValidator(_not_blank),
]
# The caller's own JSON object, stored and returned exactly as sent.
Metadata = Annotated[dict[str, Any], AfterValidator(_storable)]


class OutputOptions(BaseModel):
    """Count, encoding, seed and caller metadata of a job's outputs."""

    n: JsonInt = Field(1, ge=1, le=10, description="How many images to make.")
    output_format: OutputFormat = Field("png", description="Encoding of the stored outputs.")
    seed: Annotated[int, Field(ge=0, le=MAX_SEED), JsonNumber] | None = Field(
        None,
        description="Seed of the first output (output i uses seed + i); random if omitted.",
    )
    metadata: Metadata | None = Field(
        None, description="Your own JSON object (up to 16 KiB), returned as is on the job."
    )
    quality: Quality = Field(
        "auto",
        description="Quality tier: `draft` (cheapest, fastest), `standard`, `high`, or `auto` "
        "(the model's own choice). Each model maps it to its native control (GET /v1/models "
        "lists each model's `quality_levels` and `prices_by_quality`); the job records both.",
        examples=["standard"],
    )
    background: Background = Field(
        "auto",
        description="`transparent` asks for an alpha background (PNG or WebP output only, on "
        "models whose capabilities say `transparent_background`); `opaque` forbids one; `auto` "
        "leaves it to the model.",
        examples=["transparent"],
    )
    output_compression: Annotated[int, Field(ge=0, le=100), JsonNumber] | None = Field(
        None,
        description="Encoder quality of JPEG and WebP outputs, 0 to 100 (100 the least "
        "compressed), sent on to vendors that take it; Darkroom's default if omitted.",
        examples=[85],
    )
    moderation: Literal["auto", "low"] = Field(
        "auto",
        description="The vendor's content-moderation level where it has one (OpenAI): `low` "
        "filters less; `auto` is the vendor's default.",
    )
    content_credentials: StrictBool = Field(
        False,
        description="Sign each output with Content Credentials: an embedded C2PA manifest "
        "saying it was created (or edited) by the model, with the image it was made from as "
        "its parent ingredient. Signed with the operator's certificate; the embedded default "
        "signs with a development certificate, and the manifest says it is for testing.",
        examples=[True],
    )


class CompareOptions(BaseModel):
    """The models a job runs side by side: the same request and seeds on each, the prompt
    rendered for each, the outputs grouped by model."""

    models: list[str] | None = Field(
        None,
        min_length=1,
        max_length=MAX_COMPARED_MODELS,
        json_schema_extra={"uniqueItems": True},
        description="Models to run the same request on side by side, for comparison (up to "
        f"{MAX_COMPARED_MODELS}, no repeats): each makes `n` outputs with the same seeds, from "
        "the brief rendered for that model, and the finished job's `groups` hold each model's "
        "outputs, median latency, cost and failures. One model failing does not fail the others.",
        examples=[["local/draft", "openai/gpt-image-1-mini"]],
    )

    @field_validator("models")
    @classmethod
    def _distinct_models(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and len(set(value)) != len(value):
            raise ValueError("models must not repeat")
        return value


def check_model_or_models(model: str | None, models: list[str] | None) -> None:
    """ValueError when a request names both one `model` and several `models`."""
    if model is not None and models is not None:
        raise ValueError(
            "give either model (one model) or models (several, side by side), not both"
        )


class Problem(BaseModel):
    """An RFC 9457 problem object: every error Darkroom returns has this shape."""

    type: str = Field(
        description="A URI reference naming the kind of problem, relative to this server "
        "(`/problems/<slug>`); it serves a page there saying what the problem means and what to do."
    )
    title: str = Field(description="A short summary of the kind of problem.")
    status: int = Field(description="The HTTP status code.")
    detail: str = Field(description="What went wrong in this case, for a person.")
    instance: str | None = Field(None, description="The request path that failed.")
    errors: list[dict[str, Any]] | None = Field(
        None,
        description="For validation problems: one entry per invalid field, with its `field`, "
        "`message` and `type`. A body that is not valid JSON has one entry, whose `field` is "
        "null and whose `line` and `column` say where the syntax breaks.",
    )

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "example": {
                "type": "/problems/not-found",
                "title": "Not found",
                "status": 404,
                "detail": "No job job_01JD7Z8Q3N5X2W1V0T9S8R7Q6P.",
                "instance": "/v1/jobs/job_01JD7Z8Q3N5X2W1V0T9S8R7Q6P",
            }
        },
    )


def check_metadata(value: dict[str, Any]) -> None:
    """Refuse caller metadata that could not be stored and returned exactly as sent: too deep,
    too large, or holding NaN, Infinity, NUL characters or unpaired surrogates."""
    # Iterative, so that no nesting depth can exhaust the stack.
    pending: list[tuple[Any, int]] = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if depth > MAX_METADATA_DEPTH:
            raise ValueError(f"metadata must nest at most {MAX_METADATA_DEPTH} levels deep")
        if isinstance(item, dict):
            for key, child in item.items():
                _check_text(key)
                pending.append((child, depth + 1))
        elif isinstance(item, list):
            pending.extend((child, depth + 1) for child in item)
        elif isinstance(item, str):
            _check_text(item)
        elif isinstance(item, float) and not math.isfinite(item):
            raise ValueError("metadata must not contain NaN or Infinity")
    if len(json.dumps(value)) > MAX_METADATA_BYTES:
        raise ValueError("metadata must serialize to at most 16 KiB of JSON")


def _check_text(text: str) -> None:
    if "\x00" in text:
        raise ValueError("metadata must not contain NUL characters")
    try:
        text.encode()
    except UnicodeEncodeError:
        raise ValueError("metadata must be valid Unicode (no unpaired surrogates)") from None


class Health(BaseModel):
    """Liveness or readiness."""

    model_config = ConfigDict(
        json_schema_extra={
            "example": {
                "status": "ok",
                "checks": {"database": "ok", "queue": "ok", "storage": "ok"},
            }
        }
    )

    status: Literal["ok"] = Field("ok", description="Always `ok`; failures are problem+json.")
    checks: dict[str, str] = Field(
        default_factory=dict, description="Each dependency checked and its state."
    )
