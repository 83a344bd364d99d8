"""The provider protocol every model adapter implements, and the capabilities it declares."""

from dataclasses import dataclass
from typing import Protocol

from PIL import Image


@dataclass(frozen=True)
class ModelCapabilities:
    """What one model can do; the catalog shows it and requests are checked against it."""

    modes: tuple[str, ...] = ("generate",)
    sizes: tuple[tuple[int, int], ...] | None = None
    min_side: int = 64
    max_side: int = 4096
    output_formats: tuple[str, ...] = ("png", "jpeg", "webp")
    transparent_background: bool = False
    seed: bool = True
    negative_prompt: bool = False
    mask: bool = False
    max_references: int = 0
    max_n: int = 10
    default_area: int = 1024 * 1024


@dataclass(frozen=True)
class ModelSpec:
    """A model in the catalog: `provider/name` plus its capabilities, price and latency."""

    provider: str
    name: str
    description: str
    capabilities: ModelCapabilities
    price_per_image_usd: float | None = None
    typical_latency_ms: int | None = None

    @property
    def id(self) -> str:
        """The public model id, `provider/name`."""
        return f"{self.provider}/{self.name}"


@dataclass(frozen=True)
class GenerateCall:
    """One image to generate, as a provider receives it: size resolved, seed fixed."""

    model: str
    prompt: str
    width: int
    height: int
    seed: int
    negative_prompt: str | None = None


@dataclass
class GenerateResult:
    """What a provider returns: the image and what it cost."""

    image: Image.Image
    cost_usd: float | None = None


class Provider(Protocol):
    """A model vendor's adapter: it knows that vendor's protocol and nothing of the database."""

    name: str

    def models(self) -> list[ModelSpec]:
        """The models this provider serves."""
        ...

    def is_available(self) -> bool:
        """Whether it is configured (keys, base URL) to take requests here."""
        ...

    async def generate(self, call: GenerateCall) -> GenerateResult:
        """Make the image `call` describes."""
        ...
