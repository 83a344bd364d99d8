"""The `openai_compatible` provider: any server that speaks OpenAI's image endpoints (LocalAI and
other self-hosted model servers), at a base URL from the settings, serving the models the
settings name. The wire protocol is the `openai` module's; only what such servers differ in is
here: the key is optional, the answer may be a link rather than base64, and nothing is known
of their models beyond their names."""

from typing import Unpack

import httpx

from app.errors import InvalidForModel, ModelUnavailable, ProviderError
from app.providers.base import EditCall, GenerateCall, GenerateResult, ModelCapabilities, ModelSpec
from app.providers.http_vendor import HTTPVendor
from app.providers.openai import (
    QUALITY_LEVELS,
    STANDARD_SIZES,
    ImagesEndpoints,
    edit_form,
    generation_body,
    result_details,
    vendor_error,
)
from app.providers.transport import TransportOptions

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
    # The server takes OpenAI's `quality`; what each level does there is its own business.
    quality_levels=QUALITY_LEVELS,
)

PRICING = "Self-hosted: no vendor price; each job's cost is null."


def parse_model_names(setting: str) -> list[str]:
    """The model names of `DARKROOM_OPENAI_COMPAT_MODELS`, in order, without blanks or repeats."""
    names = (name.strip() for name in setting.split(","))
    return list(dict.fromkeys(name for name in names if name))


class OpenAICompatibleProvider(HTTPVendor):
    """The models of one OpenAI-compatible server, available once its base URL is set."""

    name = PROVIDER
    pricing = PRICING
    enabled_by = "DARKROOM_OPENAI_COMPAT_BASE_URL"

    def __init__(
        self,
        base_url: str | None,
        model_names: list[str],
        api_key: str | None = None,
        **options: Unpack[TransportOptions],
    ) -> None:
        super().__init__(api_key, base_url or "", **options)
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
        self._endpoints = ImagesEndpoints(self._http, LABEL)

    def read_error(self, response: httpx.Response) -> ProviderError:
        """The server's error answers, read as OpenAI's (see `vendor_error`)."""
        return vendor_error(PROVIDER, LABEL, response)

    def models(self) -> list[ModelSpec]:
        """The models the settings name."""
        return list(self._models)

    def is_available(self) -> bool:
        """Only with a base URL; a key is the server's business."""
        return bool(self._base_url)

    async def generate(self, call: GenerateCall) -> GenerateResult:
        """One image at the call's size, asked for as base64 (servers that default to links
        are still read)."""
        self.check_configured()
        body = generation_body(call, response_format="b64_json")
        ((image, answer),) = await self._endpoints.generate(body)
        return GenerateResult(image, None, result_details(answer), encoded=answer.data)

    async def edit(self, call: EditCall) -> GenerateResult:
        """The source edited as the prompt says, within the mask if there is one."""
        self.check_configured()
        if call.references:
            raise InvalidForModel(
                f"{PROVIDER}/{call.model} takes no reference images.", provider=PROVIDER
            )
        fields, files = edit_form(call, PROVIDER, response_format="b64_json")
        image, answer = await self._endpoints.edit(fields, files)
        return GenerateResult(image, None, result_details(answer), encoded=answer.data)

    def check_configured(self) -> None:
        """Refuse a call before any request when no base URL is configured."""
        if not self._base_url:
            raise ModelUnavailable(
                "No OpenAI-compatible server is configured (DARKROOM_OPENAI_COMPAT_BASE_URL)."
            )
