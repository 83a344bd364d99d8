"""The base of every HTTP vendor adapter: it keeps the vendor's key and base URL, says whether the
adapter is available, refuses calls while it is not, and opens the VendorHTTP session the adapter
talks through. A vendor module declares only what is its own: its name, what its key is called,
its default base URL, how a request carries the key, and how to read its error answers."""

from abc import ABC, abstractmethod
from typing import Unpack

import httpx

from app.errors import ProviderAuthFailed, ProviderError
from app.providers.transport import TransportOptions, VendorHTTP


class HTTPVendor(ABC):
    """An adapter for a vendor's HTTP API, available once its key is configured."""

    name: str
    # What the vendor calls its key ("Replicate API token"), for the refusal without one.
    key_label: str
    default_base_url: str
    # The setting that holds the key (DARKROOM_OPENAI_API_KEY).
    enabled_by: str

    def __init__(
        self,
        api_key: str | None,
        base_url: str | None = None,
        **options: Unpack[TransportOptions],
    ) -> None:
        self._api_key = api_key
        self._http = VendorHTTP(
            self.name,
            self.default_base_url if base_url is None else base_url,
            headers=self.auth_headers(api_key or ""),
            read_error=self.read_error,
            secrets=(api_key or "",),
            **options,
        )

    def auth_headers(self, api_key: str) -> dict[str, str]:
        """The headers every request carries: the key as a bearer token, none without a key."""
        return {"Authorization": f"Bearer {api_key}"} if api_key else {}

    @abstractmethod
    def read_error(self, response: httpx.Response) -> ProviderError:
        """The typed failure for a non-2xx answer: the vendor's own cases, then
        `error_for_status`."""

    async def aclose(self) -> None:
        """Close the vendor session's pooled connections."""
        await self._http.aclose()

    def is_available(self) -> bool:
        """Only with an API key."""
        return bool(self._api_key)

    def check_configured(self) -> None:
        """Refuse a call before any request when no key is configured."""
        if not self._api_key:
            raise ProviderAuthFailed(f"No {self.key_label} is configured on this server.")
