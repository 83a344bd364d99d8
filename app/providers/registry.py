"""The registry of configured providers: resolves `provider/model` ids and lists the catalog."""

from pydantic import SecretStr

from app.config import Settings, self_hosted_models
from app.errors import ModelUnavailable
from app.providers.base import ModelSpec, Provider
from app.providers.bfl import BFLProvider
from app.providers.breaker import BreakerStore, CircuitBreaker, LocalBreakerStore
from app.providers.fal import FalProvider
from app.providers.google import GoogleProvider
from app.providers.local import LocalProvider
from app.providers.openai import OpenAIProvider
from app.providers.openai_compatible import OpenAICompatibleProvider, parse_model_names
from app.providers.replicate import ReplicateProvider
from app.providers.self_hosted import (
    DiffusersProvider,
    LoadedModel,
    OnLoad,
    PipelineOptions,
)
from app.providers.stability import StabilityProvider
from app.providers.transport import TransportOptions


class ProviderRegistry:
    """Every provider known to this process, keyed by name."""

    def __init__(self, providers: list[Provider]) -> None:
        self._providers = {provider.name: provider for provider in providers}

    async def aclose(self) -> None:
        """Close every provider's pooled connections."""
        for provider in self._providers.values():
            await provider.aclose()

    def catalog(self) -> list[tuple[ModelSpec, bool]]:
        """Every model with whether its provider is available here."""
        return [
            (spec, provider.is_available())
            for provider in self._providers.values()
            for spec in provider.models()
        ]

    def pricing(self, provider_name: str) -> str | None:
        """How a provider bills, where a price per image does not say it all (per token, per
        second of compute): the provider's `pricing` note, if it has one."""
        return getattr(self._providers.get(provider_name), "pricing", None)

    def queue_for(self, model_ids: list[str]) -> str:
        """The queue lane of a job running these models: the lane of the first whose provider
        has one of its own (self-hosted models: `gpu`), else the default lane ("")."""
        lanes = (
            getattr(self._providers.get(model_id.partition("/")[0]), "queue", "")
            for model_id in model_ids
        )
        return next((lane for lane in lanes if lane), "")

    async def serve_self_hosted(self, on_load: OnLoad | None = None) -> None:
        """Make this process one that runs self-hosted models (loading them now, if they load
        at start-up), telling `on_load` of each once it is loaded."""
        for provider in self._providers.values():
            if isinstance(provider, DiffusersProvider):
                await provider.serve(on_load)

    def self_hosted_ids(self) -> list[str]:
        """The ids of the self-hosted models named in the settings."""
        return [
            spec.id
            for provider in self._providers.values()
            if isinstance(provider, DiffusersProvider)
            for spec in provider.models()
        ]

    def loaded_models(self) -> dict[str, LoadedModel]:
        """The self-hosted models loaded in this process: where each runs, and its memory."""
        loaded: dict[str, LoadedModel] = {}
        for provider in self._providers.values():
            if isinstance(provider, DiffusersProvider):
                loaded |= provider.loaded()
        return loaded

    def resolve(self, model_id: str) -> tuple[Provider, ModelSpec]:
        """The provider and spec for a model id; ModelUnavailable if unknown or not configured."""
        provider, spec = self.describe(model_id)
        if not provider.is_available():
            how = f"; set {provider.enabled_by} to enable it" if provider.enabled_by else ""
            raise ModelUnavailable(f"Model {model_id!r} is not configured on this server{how}.")
        return provider, spec

    def describe(self, model_id: str) -> tuple[Provider, ModelSpec]:
        """The provider and spec for a model id, configured here or not; ModelUnavailable if
        unknown. Only the first slash separates the provider, so `replicate/owner/name` is the
        model `owner/name` of `replicate`. Providers that host any model (Replicate, fal) name
        the ones they do not list through their `model_spec`."""
        provider_name, _, model_name = model_id.partition("/")
        provider = self._providers.get(provider_name)
        spec = None
        if provider is not None:
            spec = next((s for s in provider.models() if s.name == model_name), None)
            open_catalog = getattr(provider, "model_spec", None)
            if spec is None and open_catalog is not None:
                spec = open_catalog(model_name)
        if provider is None or spec is None:
            raise ModelUnavailable(f"Unknown model {model_id!r}; GET /v1/models lists them.")
        return provider, spec


def secret(value: SecretStr | None) -> str | None:
    """A key setting's value, or None when unset or empty."""
    if value is None:
        return None
    return value.get_secret_value() or None


def vendor_options(settings: Settings, breakers: BreakerStore, vendor: str) -> TransportOptions:
    """What every HTTP vendor adapter takes from the settings: its time limit per request, its
    retry budget and backoff, its cap on calls in flight, its circuit breaker (its state kept in
    `breakers`), and the address rules for downloading the images it links to."""
    return {
        "timeout_seconds": settings.provider_timeout(vendor),
        "max_retries": settings.provider_max_retries,
        "max_connections": settings.provider_max_connections,
        "backoff_seconds": settings.provider_retry_backoff_seconds,
        "breaker": CircuitBreaker(
            threshold=settings.provider_breaker_threshold,
            cooldown_seconds=settings.provider_breaker_cooldown_seconds,
            max_wait_seconds=settings.provider_breaker_max_wait_seconds,
            store=breakers,
        ),
        "download_policy": settings.url_policy,
    }


def create_registry(settings: Settings, breakers: BreakerStore | None = None) -> ProviderRegistry:
    """The providers this installation serves; those without keys are listed as unavailable.
    Each HTTP vendor is one entry below, built from its `DARKROOM_<VENDOR>_*` settings and
    `vendor_options`. `breakers` keeps the vendors' breaker state: the runtime passes one
    shared with other processes; by default it is this registry's own."""
    breakers = breakers or LocalBreakerStore()
    providers: list[Provider] = [
        LocalProvider(labels=settings.draft_labels),
        OpenAIProvider(
            secret(settings.openai_api_key),
            settings.openai_base_url,
            **vendor_options(settings, breakers, "openai"),
        ),
        OpenAICompatibleProvider(
            settings.openai_compat_base_url,
            parse_model_names(settings.openai_compat_models),
            secret(settings.openai_compat_api_key),
            **vendor_options(settings, breakers, "openai_compatible"),
        ),
        GoogleProvider(
            secret(settings.google_api_key),
            settings.google_base_url,
            **vendor_options(settings, breakers, "google"),
        ),
        StabilityProvider(
            secret(settings.stability_api_key),
            settings.stability_base_url,
            **vendor_options(settings, breakers, "stability"),
        ),
        BFLProvider(
            secret(settings.bfl_api_key),
            settings.bfl_base_url,
            **vendor_options(settings, breakers, "bfl"),
        ),
        ReplicateProvider(
            secret(settings.replicate_api_key),
            settings.replicate_base_url,
            **vendor_options(settings, breakers, "replicate"),
        ),
        FalProvider(
            secret(settings.fal_api_key),
            settings.fal_base_url,
            **vendor_options(settings, breakers, "fal"),
        ),
        DiffusersProvider(
            self_hosted_models(settings.diffusers_models), pipeline_options(settings)
        ),
    ]
    return ProviderRegistry(providers)


def pipeline_options(settings: Settings) -> PipelineOptions:
    """How self-hosted models run here, from their `DARKROOM_DIFFUSERS_*` settings."""
    return PipelineOptions(
        device=settings.diffusers_device,
        precision=settings.diffusers_precision,
        load=settings.diffusers_load,
        steps=settings.diffusers_steps,
        guidance_scale=settings.diffusers_guidance_scale,
        gpu_second_usd=settings.diffusers_gpu_second_usd,
        cpu_threads=settings.cpu_threads,
    )
