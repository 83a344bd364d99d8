"""The `openai_compatible` provider: any server that speaks OpenAI's image endpoints (LocalAI and
other self-hosted model servers), at a base URL from the settings, serving the models the
settings name. The wire protocol is the `openai` module's; only what such servers differ in is
here: the key is optional, the answer may be a link rather than base64, and nothing is known
of their models beyond their names."""

import asyncio

from app.errors import InvalidForModel, ModelUnavailable
from app.fetcher import UrlPolicy
from app.providers.base import EditCall, GenerateCall, GenerateResult, ModelCapabilities, ModelSpec
from app.providers.openai import (
    STANDARD_SIZES,
    ImagesEndpoints,
    bearer,
    edit_form,
    error_reader,
    generation_body,
    result_details,
)
from app.providers.transport import CircuitBreaker, Sleep, VendorHTTP

PROVIDER = "openai_compatible"
LABEL = "The OpenAI-compatible server"

# What a server that follows OpenAI's image API is sure to take: its standard sizes, one
# source image with an optional mask. Seeds, negative prompts and reference images are
# extensions each server spells its own way, so none is claimed.
CAPABILITIES = ModelCapabilities(
    modes=("generate", "edit"),
    sizes=STANDARD_SIZES,
    seed=False,
    negative_prompt=False,
    mask=True,
    max_references=0,
    max_n=10,
)

PRICING = "Self-hosted: no vendor price; each job's cost is null."


def parse_model_names(setting: str) -> list[str]:
    """The model names of `DARKROOM_OPENAI_COMPAT_MODELS`, in order, without blanks or repeats."""
    names = (name.strip() for name in setting.split(","))
    return list(dict.fromkeys(name for name in names if name))


class OpenAICompatibleProvider:
    """The models of one OpenAI-compatible server, available once its base URL is set."""

    name = PROVIDER
    pricing = PRICING

    def __init__(
        self,
        base_url: str | None,
        model_names: list[str],
        api_key: str | None = None,
        *,
        timeout_seconds: float = 120,
        max_retries: int = 3,
        download_policy: UrlPolicy | None = None,
        breaker: CircuitBreaker | None = None,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._base_url = base_url
        self._models = [
            ModelSpec(
                provider=PROVIDER,
                name=name,
                description=(
                    f"{name} on the OpenAI-compatible image server configured here. Its "
                    "quality, speed and limits are the server's; no seed."
                ),
                capabilities=CAPABILITIES,
            )
            for name in model_names
        ]
        http = VendorHTTP(
            PROVIDER,
            base_url or "",
            headers=bearer(api_key),
            read_error=error_reader(PROVIDER, LABEL),
            secrets=(api_key or "",),
            timeout_seconds=timeout_seconds,
            max_retries=max_retries,
            breaker=breaker,
            download_policy=download_policy,
            sleep=sleep,
        )
        self._endpoints = ImagesEndpoints(http, LABEL)

    def models(self) -> list[ModelSpec]:
        """The models the settings name."""
        return list(self._models)

    def is_available(self) -> bool:
        """Only with a base URL; a key is the server's business."""
        return bool(self._base_url)

    async def generate(self, call: GenerateCall) -> GenerateResult:
        """One image at the call's size, asked for as base64 (servers that default to links
        are still read)."""
        self._check_configured()
        body = generation_body(call, response_format="b64_json")
        image, answer = await self._endpoints.generate(body)
        return GenerateResult(image, None, result_details(answer))

    async def edit(self, call: EditCall) -> GenerateResult:
        """The source edited as the prompt says, within the mask if there is one."""
        self._check_configured()
        if call.references:
            raise InvalidForModel(
                f"{PROVIDER}/{call.model} takes no reference images.", provider=PROVIDER
            )
        fields, files = edit_form(call, PROVIDER, response_format="b64_json")
        image, answer = await self._endpoints.edit(fields, files)
        return GenerateResult(image, None, result_details(answer))

    def _check_configured(self) -> None:
        if not self._base_url:
            raise ModelUnavailable(
                "No OpenAI-compatible server is configured (DARKROOM_OPENAI_COMPAT_BASE_URL)."
            )
