"""The `openai_compatible` provider against the fake playing a self-hosted OpenAI-compatible
image server: OpenAI's wire protocol, an optional key, answers as base64 or as links."""

import io
import typing
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest
from PIL import Image

from app.config import Settings
from app.errors import (
    InvalidForModel,
    ModelUnavailable,
    ProviderAuthFailed,
    ProviderMalformedResponse,
    ProviderOverloaded,
)
from app.fetcher import UrlPolicy
from app.providers.base import EditCall, GenerateCall, InputImage, Reference
from app.providers.openai_compatible import OpenAICompatibleProvider, parse_model_names
from app.providers.registry import create_registry
from app.providers.transport import CircuitBreaker
from tests.fakes.openai_images import FakeOpenAIImages, server_error
from tests.providers.support import RecordedSleeps

KEY = "local-server-key-5e1f0c2a"
MODELS = ["flux-schnell", "sdxl-turbo"]


@pytest.fixture
async def server() -> AsyncIterator[FakeOpenAIImages]:
    """A compatible server that needs no key and serves two models."""
    async with FakeOpenAIImages(api_key=None, models=set(MODELS), compatible=True) as fake:
        yield fake


def provider_for(server: FakeOpenAIImages, **options: typing.Any) -> OpenAICompatibleProvider:
    """A provider for the fake's models, with a breaker of its own and its waits recorded,
    not slept."""
    values = {
        "base_url": server.base_url,
        "model_names": MODELS,
        "max_retries": 1,
        "breaker": CircuitBreaker(),
        "sleep": RecordedSleeps(),
    } | options
    return OpenAICompatibleProvider(**values)


def generate_call(model: str = "flux-schnell") -> GenerateCall:
    """A 1024x1536 image."""
    return GenerateCall(model=model, prompt="a red bicycle", width=1024, height=1536, seed=1)


def source() -> InputImage:
    """A 256x256 PNG source."""
    buffer = io.BytesIO()
    Image.new("RGB", (256, 256), "navy").save(buffer, "PNG")
    return InputImage("ast_source", buffer.getvalue(), "png", 256, 256)


async def test_generates_through_openais_endpoint_asking_for_base64(server) -> None:
    result = await provider_for(server).generate(generate_call())

    assert result.image.size == (1024, 1536)
    assert result.cost_usd is None
    [request] = server.received
    assert (request.method, request.path) == ("POST", "/v1/images/generations")
    assert "authorization" not in request.headers  # no key configured, none sent
    assert request.body["model"] == "flux-schnell"
    assert request.body["response_format"] == "b64_json"


async def test_png_is_asked_for_whatever_the_job_stores(server) -> None:
    call = replace(generate_call(), output_format="webp")

    result = await provider_for(server).generate(call)

    assert server.received[0].body["output_format"] == "png"
    assert "output_compression" not in server.received[0].body
    assert result.encoded == server.sent[0]


async def test_a_configured_key_is_sent_as_bearer() -> None:
    async with FakeOpenAIImages(api_key=KEY, models=set(MODELS), compatible=True) as keyed:
        await provider_for(keyed, api_key=KEY).generate(generate_call())
        with pytest.raises(ProviderAuthFailed) as refused:
            await provider_for(keyed).generate(generate_call())

    assert keyed.received[0].headers["authorization"] == f"Bearer {KEY}"
    assert KEY not in str(refused.value.to_problem())


async def test_an_answer_with_a_link_is_downloaded_under_the_address_rules() -> None:
    async with FakeOpenAIImages(
        api_key=None, models=set(MODELS), compatible=True, links=True
    ) as linking:
        allowed = provider_for(linking, download_policy=UrlPolicy.from_setting("127.0.0.1"))
        result = await allowed.generate(generate_call())
        # Without an allowance the fetcher refuses a loopback link like any other.
        with pytest.raises(ProviderMalformedResponse) as refused:
            await provider_for(linking, max_retries=0).generate(generate_call())

    assert result.image.size == (1024, 1536)
    assert [request.method for request in linking.received] == ["POST", "GET", "POST"]
    assert "could not be downloaded" in refused.value.detail


async def test_an_edit_sends_one_image_part_and_the_mask(server) -> None:
    buffer = io.BytesIO()
    Image.new("RGBA", (256, 256), (0, 0, 0, 0)).save(buffer, "PNG")
    mask = InputImage("ast_mask", buffer.getvalue(), "png", 256, 256)
    call = EditCall(
        model="sdxl-turbo",
        prompt="a hat",
        image=source(),
        width=1024,
        height=1024,
        seed=3,
        mask=mask,
    )

    result = await provider_for(server).edit(call)

    assert result.image.size == (1024, 1024)
    [form] = server.forms
    assert form.path == "/v1/images/edits"
    assert form.file_names == ["image", "mask"]
    assert dict(form.fields)["response_format"] == "b64_json"


async def test_references_are_refused_before_anything_is_sent(server) -> None:
    reference = Reference(source(), "style")
    call = EditCall(
        model="sdxl-turbo",
        prompt="x",
        image=source(),
        width=1024,
        height=1024,
        seed=3,
        references=(reference,),
    )

    with pytest.raises(InvalidForModel):
        await provider_for(server).edit(call)
    assert server.received == []


async def test_server_errors_are_retried_then_overloaded(server) -> None:
    server.script(*[server_error(502, retry_after="0")] * 2)

    with pytest.raises(ProviderOverloaded) as caught:
        await provider_for(server).generate(generate_call())

    assert caught.value.extensions["provider"] == "openai_compatible"
    assert len(server.received) == 2


async def test_without_a_base_url_it_is_unavailable_and_refuses() -> None:
    provider = OpenAICompatibleProvider(None, MODELS)

    assert not provider.is_available()
    with pytest.raises(ModelUnavailable):
        await provider.generate(generate_call())


def test_model_names_come_from_the_setting_in_order_without_blanks() -> None:
    assert parse_model_names(" flux-schnell, ,sdxl-turbo,flux-schnell ") == MODELS
    assert parse_model_names("") == []


def test_the_registry_lists_the_configured_models_under_the_provider(tmp_path) -> None:
    settings = Settings(
        data_dir=tmp_path,
        openai_compat_base_url="http://models.internal:8080/v1",
        openai_compat_models="flux-schnell,org/custom-model",
    )
    registry = create_registry(settings)

    listed = {spec.id: available for spec, available in registry.catalog()}
    provider, spec = registry.resolve("openai_compatible/org/custom-model")

    assert listed["openai_compatible/flux-schnell"] is True
    assert spec.name == "org/custom-model"  # only the first slash separates the provider
    assert provider.name == "openai_compatible"
    unconfigured = create_registry(Settings(data_dir=tmp_path, openai_compat_models="a"))
    assert dict((s.id, ok) for s, ok in unconfigured.catalog())["openai_compatible/a"] is False
