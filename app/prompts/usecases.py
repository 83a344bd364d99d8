"""Use cases a brief can serve, what each fills open slots with, and layouts per aspect ratio."""

import re
from collections.abc import Mapping
from dataclasses import dataclass

from app.prompts.slots import terms


@dataclass(frozen=True)
class UseCase:
    """A kind of image (product shot, portrait...), how to spot it and how to fill its gaps.

    `layout` says where the subject sits; a destination aspect ratio replaces it with a layout of
    its own. `slots` holds the other defaults as short phrases, most important first.
    """

    name: str
    keywords: re.Pattern[str] | None
    layout: str
    slots: Mapping[str, tuple[str, ...]]
    negative: tuple[str, ...]


COMMON_NEGATIVE = ("blurry", "low quality", "jpeg artifacts", "watermark", "signature")

# Detection order matters: the destination (logo, thumbnail, banner, listing, ad, social post)
# says more about the image than the object in it, so it is checked before product or portrait.
USE_CASES: tuple[UseCase, ...] = (
    UseCase(
        name="logo",
        keywords=terms(
            "logos?", "logotype", "icons?", "favicon", "emblem", "monogram", "wordmark", "mascot"
        ),
        layout="a single mark centred with generous padding",
        slots={
            "subject": ("a simple symbolic mark",),
            "setting": ("a plain white background",),
            "composition": ("straight-on view", "balanced and readable at small sizes"),
            "lighting": ("flat even lighting without cast shadows",),
            "style": ("flat vector logo design", "clean geometric shapes"),
            "mood": ("confident and memorable",),
            "palette": ("a limited palette of two or three flat colours",),
            "quality": ("crisp edges", "simple scalable shapes"),
        },
        negative=("photo", "gradients", "clutter", "extra text", *COMMON_NEGATIVE),
    ),
    UseCase(
        name="thumbnail",
        keywords=terms("thumbnails?", "youtube", "video cover", "podcast cover"),
        layout="one large subject filling most of the frame",
        slots={
            "subject": ("one bold focal subject",),
            "setting": ("a simple high-contrast background",),
            "composition": ("close framing", "strong readable silhouette"),
            "lighting": ("bright punchy lighting with clear separation from the background",),
            "style": ("bold high-impact digital image",),
            "mood": ("exciting and curiosity-provoking",),
            "palette": ("saturated high-contrast colours that stay readable at small sizes",),
            "quality": ("crisp clean edges", "legible at small sizes"),
        },
        negative=("clutter", "tiny details", "low contrast", *COMMON_NEGATIVE),
    ),
    UseCase(
        name="banner",
        keywords=terms(
            "banners?",
            "hero (?:image|section|shot|visual)",
            "header image",
            "website header",
            "landing page",
            "cover photo",
            "email header",
        ),
        layout="the subject to one side with open negative space for copy",
        slots={
            "subject": ("one clear hero subject",),
            "setting": ("an expansive uncluttered environment",),
            "composition": ("eye-level view", "calm areas behind where copy will sit"),
            "lighting": ("clean even lighting with a soft gradient across the frame",),
            "style": ("polished commercial photography",),
            "mood": ("inviting and confident",),
            "palette": ("harmonious brand-friendly colours",),
            "quality": ("high resolution", "sharp across the whole frame"),
        },
        negative=("clutter in the copy area", "busy background", *COMMON_NEGATIVE),
    ),
    UseCase(
        name="ecommerce",
        keywords=terms(
            "e-?commerce",
            "listings?",
            "amazon",
            "etsy",
            "shopify",
            "product (?:page|card|listing)",
            "catalog(?:ue)?",
            "marketplace",
            "online store",
        ),
        layout="the whole product centred and filling about 85% of the frame",
        slots={
            "subject": ("the product",),
            "setting": ("a pure white background",),
            "composition": ("straight-on front view", "whole product visible and uncropped"),
            "lighting": ("even shadowless studio lighting",),
            "style": ("clean e-commerce catalogue photography",),
            "mood": ("clear and honest",),
            "palette": ("true-to-life product colours",),
            "quality": ("sharp edge-to-edge detail", "accurate colour", "high resolution"),
        },
        negative=("props", "clutter", "harsh shadows", "cropped product", *COMMON_NEGATIVE),
    ),
    UseCase(
        name="ad",
        keywords=terms(
            "ads?",
            "advert\\w*",
            "campaign",
            "marketing",
            "promo\\w*",
            "poster",
            "flyer",
            "billboard",
            "sale",
            "key visual",
            "launch visual",
        ),
        layout="bold hero layout with one focal point and space reserved for headline and logo",
        slots={
            "subject": ("the advertised product or idea as the hero",),
            "setting": ("a clean uncluttered backdrop that supports the message",),
            "composition": ("slightly low hero angle",),
            "lighting": ("bright polished commercial lighting with controlled highlights",),
            "style": ("polished advertising photography",),
            "mood": ("aspirational and confident",),
            "palette": ("bold on-brand colours with strong contrast",),
            "quality": ("crisp detail", "professional retouching", "high resolution"),
        },
        negative=("clutter", "misspelled text", "distorted logo", *COMMON_NEGATIVE),
    ),
    UseCase(
        name="social",
        keywords=terms(
            "social(?: media)?",
            "instagram",
            "insta",
            "tiktok",
            "facebook",
            "pinterest",
            "linkedin",
            "twitter",
            "reels?",
            "feed post",
            "carousel",
        ),
        layout="scroll-stopping layout with the subject centred and clear",
        slots={
            "subject": ("one eye-catching subject",),
            "setting": ("a stylish contemporary setting",),
            "composition": ("eye-level view", "subject close enough to read on a phone"),
            "lighting": ("bright flattering soft light",),
            "style": ("modern lifestyle photography",),
            "mood": ("upbeat and authentic",),
            "palette": ("cohesive eye-catching colours",),
            "quality": ("crisp detail", "high resolution"),
        },
        negative=("clutter", *COMMON_NEGATIVE),
    ),
    UseCase(
        name="product",
        keywords=terms(
            "products?",
            "packshot",
            "packaging",
            "bottle",
            "perfume",
            "fragrance",
            "sneakers?",
            "handbag",
            "wristwatch",
            "headphones",
            "earbuds",
            "cosmetics?",
            "skincare",
            "serum",
            "lipstick",
        ),
        layout="the product centred with generous margin",
        slots={
            "subject": ("the product",),
            "setting": ("a seamless light-grey studio backdrop",),
            "composition": ("slightly elevated three-quarter view", "whole product in frame"),
            "lighting": ("soft diffused studio key light", "gentle fill", "soft contact shadow"),
            "style": ("high-end commercial product photography",),
            "mood": ("clean and premium",),
            "palette": ("neutral backdrop tones that let the product's own colours stand out",),
            "quality": (
                "tack-sharp focus",
                "accurate materials and reflections",
                "high resolution",
            ),
        },
        negative=("distorted product", "warped label", "clutter", *COMMON_NEGATIVE),
    ),
    UseCase(
        name="portrait",
        keywords=terms(
            "portraits?",
            "headshots?",
            "selfie",
            "profile (?:picture|photo)",
            "avatar",
            "face",
        ),
        layout="head-and-shoulders framing with the eyes on the upper third",
        slots={
            "subject": ("a person",),
            "setting": ("a softly blurred uncluttered background",),
            "composition": ("eye-level view", "85mm lens look"),
            "lighting": ("soft directional key light with gentle fill",),
            "style": ("natural portrait photography", "shallow depth of field"),
            "mood": ("warm and approachable",),
            "palette": ("natural skin tones against a muted harmonious background",),
            "quality": ("sharp focus on the eyes", "natural skin texture", "high resolution"),
        },
        negative=("distorted face", "extra fingers", "plastic skin", *COMMON_NEGATIVE),
    ),
    UseCase(
        name="concept_art",
        keywords=terms(
            "concept (?:art|design)",
            "environment design",
            "character design",
            "creature design",
            "matte painting",
            "keyframe",
            "worldbuilding",
            "fantasy",
            "sci-?fi",
            "science fiction",
        ),
        layout="dynamic layout with a clear focal point and strong depth",
        slots={
            "subject": ("a striking central subject",),
            "setting": ("a richly imagined environment with a sense of scale",),
            "composition": ("wide establishing view", "layered foreground and background"),
            "lighting": ("dramatic atmospheric lighting with volumetric light",),
            "style": ("digital concept art painting",),
            "mood": ("epic and evocative",),
            "palette": ("cohesive painterly colour script",),
            "quality": ("highly detailed", "clear shape language", "polished finish"),
        },
        negative=("muddy colours", "low detail", *COMMON_NEGATIVE),
    ),
)

GENERAL = UseCase(
    name="general",
    keywords=None,
    layout="balanced layout with a clear focal point",
    slots={
        "subject": ("a single clear main subject",),
        "setting": ("an uncluttered setting that fits the subject",),
        "composition": ("eye-level view",),
        "lighting": ("soft natural light with gentle shadows",),
        "style": ("natural true-to-life photographic look",),
        "mood": ("natural and inviting",),
        "palette": ("natural harmonious colours",),
        "quality": ("sharp focus", "fine detail", "high resolution"),
    },
    negative=("distorted", "deformed", *COMMON_NEGATIVE),
)

# (lowest width/height ratio, layout): the first row the ratio reaches wins.
ASPECT_LAYOUTS: tuple[tuple[float, str], ...] = (
    (
        2.0,
        "wide banner layout with the subject on the right third and clean uncluttered "
        "negative space on the left for copy",
    ),
    (1.2, "landscape frame with the subject on a rule-of-thirds line"),
    (0.85, "square frame with the subject centred"),
    (0.65, "vertical frame with the subject centred and filling most of the height"),
    (
        0.0,
        "tall vertical frame with the subject centred and kept clear of the top and bottom "
        "bands where captions and interface sit",
    ),
)


def detect_use_case(brief: str) -> UseCase:
    """The first use case whose keywords the brief mentions, else the general one."""
    for use_case in USE_CASES:
        if use_case.keywords and use_case.keywords.search(brief):
            return use_case
    return GENERAL


def aspect_layout(aspect_ratio: tuple[int, int] | None) -> str | None:
    """The layout that suits the destination's shape, or None when the shape is unknown."""
    if aspect_ratio is None:
        return None
    width, height = aspect_ratio
    ratio = width / height
    return next(layout for lowest, layout in ASPECT_LAYOUTS if ratio >= lowest)
