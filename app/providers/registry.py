"""The registry of configured providers: resolves `provider/model` ids and lists the catalog."""

from app.config import Settings
from app.errors import ModelUnavailable
from app.providers.base import ModelSpec, Provider
from app.providers.local import LocalProvider
from app.providers.openai import OpenAIProvider


class ProviderRegistry:
    """Every provider known to this process, keyed by name."""

    def __init__(self, providers: list[Provider]) -> None:
        self._providers = {provider.name: provider for provider in providers}

    def catalog(self) -> list[tuple[ModelSpec, bool]]:
        """Every model with whether its provider is available here."""
        return [
            (spec, provider.is_available())
            for provider in self._providers.values()
            for spec in provider.models()
        ]

    def resolve(self, model_id: str) -> tuple[Provider, ModelSpec]:
        """The provider and spec for a model id; ModelUnavailable if unknown or not configured."""
        provider_name, _, model_name = model_id.partition("/")
        provider = self._providers.get(provider_name)
        spec = (
            next((s for s in provider.models() if s.name == model_name), None) if provider else None
        )
        if provider is None or spec is None:
            raise ModelUnavailable(f"Unknown model {model_id!r}; GET /v1/models lists them.")
        if not provider.is_available():
            raise ModelUnavailable(f"Model {model_id!r} is not configured on this server.")
        return provider, spec


def create_registry(settings: Settings) -> ProviderRegistry:
    """The providers this installation serves; those without keys are listed as unavailable."""
    openai_key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else None
    return ProviderRegistry([LocalProvider(), OpenAIProvider(openai_key, settings.openai_base_url)])
