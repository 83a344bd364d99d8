"""Named style presets a caller can ask for; each fills only the slots the brief leaves open."""

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType


@dataclass(frozen=True)
class StylePreset:
    """A named look: phrases for the slots it fills and what its negative prompt rules out."""

    style: tuple[str, ...]
    lighting: tuple[str, ...]
    palette: tuple[str, ...]
    quality: tuple[str, ...]
    negative: tuple[str, ...]

    def slot_values(self) -> dict[str, tuple[str, ...]]:
        """The phrases this preset offers, by slot."""
        return {
            "style": self.style,
            "lighting": self.lighting,
            "palette": self.palette,
            "quality": self.quality,
        }


STYLE_PRESETS: Mapping[str, StylePreset] = MappingProxyType(
    {
        "photoreal": StylePreset(
            style=("photorealistic photograph", "true-to-life textures"),
            lighting=("natural light with realistic soft shadows",),
            palette=("true-to-life natural colours",),
            quality=("sharp focus", "high dynamic range", "fine detail"),
            negative=("illustration", "painting", "cartoon", "cgi", "plastic look"),
        ),
        "studio-product": StylePreset(
            style=("high-end studio product photography",),
            lighting=("large softbox key light", "subtle rim light", "soft contact shadow"),
            palette=("clean neutral backdrop tones that let the product's colours stand out",),
            quality=("tack-sharp", "accurate materials and reflections", "high resolution"),
            negative=("clutter", "distorted product", "warped label", "fingerprints", "dust"),
        ),
        "editorial": StylePreset(
            style=("editorial magazine photography",),
            lighting=("directional natural light with soft falloff",),
            palette=("refined slightly muted tones",),
            quality=("crisp detail", "tasteful retouching"),
            negative=("oversaturated", "stock-photo look", "cartoon"),
        ),
        "cinematic": StylePreset(
            style=("cinematic film still", "anamorphic widescreen look"),
            lighting=("dramatic motivated lighting", "strong contrast"),
            palette=("rich cinematic colour grade with deep shadows",),
            quality=("high dynamic range", "subtle film grain", "shallow depth of field"),
            negative=("flat lighting", "amateur snapshot", "cartoon"),
        ),
        "flat-illustration": StylePreset(
            style=("flat vector illustration", "clean geometric shapes"),
            lighting=("flat even light without cast shadows",),
            palette=("limited harmonious palette of bold flat colours",),
            quality=("crisp edges", "clean shapes", "balanced negative space"),
            negative=("photo", "photorealistic", "3d render", "texture noise", "gradients"),
        ),
        "3d-render": StylePreset(
            style=("polished 3D render", "soft global illumination"),
            lighting=("soft studio area lights with ambient occlusion",),
            palette=("clean saturated colours",),
            quality=("smooth materials", "high detail", "clean noise-free render"),
            negative=("photo", "noisy render", "low poly artifacts"),
        ),
        "watercolor": StylePreset(
            style=("watercolor painting on textured paper", "soft bleeding edges"),
            lighting=("soft diffuse light",),
            palette=("translucent washes of soft colour",),
            quality=("visible paper grain", "delicate brushwork"),
            negative=("photo", "photorealistic", "3d render", "hard digital edges"),
        ),
        "anime": StylePreset(
            style=("anime illustration", "clean cel shading", "expressive line work"),
            lighting=("bright cel-shaded light with crisp shadow shapes",),
            palette=("vivid anime colour palette",),
            quality=("clean line art", "detailed background"),
            negative=("photo", "photorealistic", "3d render", "deformed hands"),
        ),
        "line-art": StylePreset(
            style=("clean black ink line art on white", "no shading"),
            lighting=("no lighting effects", "flat line work"),
            palette=("black ink on white",),
            quality=("precise even line weight", "clean closed shapes"),
            negative=("colour fill", "shading", "gradients", "photo", "texture"),
        ),
    }
)


def preset_named(name: str | None) -> StylePreset | None:
    """The preset called `name` (None for none); ValueError listing the valid names otherwise."""
    if name is None:
        return None
    preset = STYLE_PRESETS.get(name)
    if preset is None:
        valid = ", ".join(STYLE_PRESETS)
        raise ValueError(f"unknown style preset {name!r}; valid presets: {valid}")
    return preset
