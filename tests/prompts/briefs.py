"""A table of varied briefs and what the optimizer must respect in each."""

from dataclasses import dataclass


@dataclass(frozen=True)
class Case:
    """One brief, the options it is optimized with, and the properties its result must have."""

    brief: str
    use_case: str | None = None  # expected detection, where the brief makes it clear
    style: str | None = None
    aspect_ratio: tuple[int, int] | None = None
    keep: tuple[str, ...] = ()
    references: tuple[str, ...] = ()  # roles of an edit's reference images
    is_edit: bool = False
    night: bool = False  # no daylight may be added
    drawn: bool = False  # no photographic or camera terms may be added
    monochrome: bool = False  # no colour may be added
    dark: bool = False  # dark or moody: no brightness or daylight may be added
    given: tuple[str, ...] = ()  # slots the brief states: kept, never filled
    setting: str | None = None  # the brief's words the setting slot must hold
    left_open: tuple[str, ...] = ()  # slots the brief does not state, however its words read
    palette: str | None = None  # the palette slot: the brief's colour words and nothing else
    text: str | None = None  # the text slot: the words to render, quoted; None invents none

    @property
    def id(self) -> str:
        """A short readable test id."""
        return self.brief[:40].replace(" ", "_")


LONG_PRODUCT_DETAILS = (
    "The bottle is heavy faceted glass with a brushed brass cap and a paper label printed in "
    "letterpress, and the juice inside is a pale straw colour that should read as clean and "
    "natural. It stands on a slab of honed travertine with a few sprigs of dried lavender laid "
    "beside it, never touching the glass. Reflections must stay controlled so the facets read "
    "as crisp lines rather than blown highlights, and the label must be legible and straight. "
)
LONG_NIGHT_DETAILS = (
    "Rain has just stopped and the cobblestones are still wet, holding reflections of the "
    "lanterns that hang above the doorways of the old Altstadt, where a small café called "
    "Zur Linde still has its shutters half open and a waiter stacks chairs under the awning. "
    "A cat watches from a windowsill, a bicycle leans against a wall, steam drifts from a "
    "grate, and the street curves away uphill into darkness between crooked timber houses. "
)

CASES: tuple[Case, ...] = (
    # Product shots and e-commerce listings.
    Case("a ceramic coffee mug on a walnut desk, morning light", given=("lighting",)),
    Case("product shot of a perfume bottle", use_case="product"),
    Case("packshot of wireless headphones", use_case="product", style="studio-product"),
    Case("matte black skincare serum bottle", use_case="product", given=("palette",)),
    Case("red running sneaker for an Amazon listing", use_case="ecommerce", given=("palette",)),
    Case("e-commerce photo of a leather handbag, straight-on", use_case="ecommerce"),
    Case("Etsy listing for a hand-thrown ceramic bowl", use_case="ecommerce", aspect_ratio=(1, 1)),
    # Portraits.
    Case("portrait of an elderly fisherman", use_case="portrait"),
    Case("corporate headshot of a woman in a navy blazer", use_case="portrait"),
    Case("portrait of a jazz singer, dramatic rim light", use_case="portrait", given=("lighting",)),
    Case("anime portrait of a girl with silver hair", use_case="portrait", drawn=True),
    # Ads, thumbnails, social, banners.
    Case(
        'Instagram ad for iced coffee with text "SUMMER SALE"', use_case="ad", text='"SUMMER SALE"'
    ),
    Case("billboard campaign for an electric scooter", use_case="ad", aspect_ratio=(3, 1)),
    Case("YouTube thumbnail for a video about budget travel", use_case="thumbnail"),
    Case("thumbnail: shocked chef holding a burnt cake", use_case="thumbnail"),
    Case("instagram post of a cozy reading nook", use_case="social", aspect_ratio=(4, 5)),
    Case("TikTok cover of a skateboarder mid-air", use_case="social", aspect_ratio=(9, 16)),
    Case("website banner for a yoga studio", use_case="banner", aspect_ratio=(21, 9)),
    Case("hero image for a fintech landing page", use_case="banner", aspect_ratio=(16, 9)),
    # Concept art and logos.
    Case("concept art of a floating desert city", use_case="concept_art", drawn=True),
    Case("sci-fi environment design, abandoned orbital station", use_case="concept_art"),
    Case("logo for a coffee roastery called Ember", use_case="logo", drawn=True),
    Case("minimal app icon of a paper plane", use_case="logo"),
    # Lighting or style already stated.
    Case("a bowl of ramen lit by neon signs", given=("lighting",)),
    Case("a greenhouse full of ferns, golden hour sunlight", given=("lighting",)),
    Case("oil painting of a harbour at dawn", drawn=True, given=("style",)),
    Case("a cat on a windowsill", style="cinematic"),
    Case("a vintage camera on a shelf", style="photoreal", use_case=None),
    # Night scenes.
    Case("a city street at night after the rain", night=True),
    Case("a lighthouse on a cliff at night", night=True, style="photoreal"),
    Case("a moonlit lake with a wooden canoe", night=True, given=("lighting",)),
    Case("dark forest with glowing mushrooms", dark=True, given=("lighting",)),
    Case("a camper van under a starry night sky", night=True, style="editorial"),
    # Watercolor, anime, line art, 3d.
    Case("watercolor of a fox in a snowy forest", drawn=True, given=("style",)),
    Case("a teapot in watercolour", drawn=True, given=("style",), style="photoreal"),
    Case("anime girl on a rooftop at sunset", drawn=True, given=("style",)),
    Case("line art of a hummingbird", drawn=True, given=("style",)),
    Case("a robot barista", drawn=True, style="line-art"),
    Case("3d render of a cute isometric island", drawn=True, given=("style",)),
    Case("a mountain cabin", drawn=True, style="flat-illustration"),
    # Black and white.
    Case("black and white portrait of a boxer", use_case="portrait", monochrome=True),
    Case("monochrome street scene in the rain", monochrome=True, style="cinematic"),
    Case("a noir detective in his office, black-and-white", monochrome=True),
    # Edits with keep.
    Case(
        "replace the background with a sunny beach",
        is_edit=True,
        keep=("face", "identity", "framing"),
        given=("lighting",),
    ),
    Case("make the sneaker blue", is_edit=True, keep=("product_angle", "background", "lighting")),
    Case("turn this photo into a watercolor painting", is_edit=True, keep=("composition",)),
    Case("change the headline colour to gold", is_edit=True, keep=("layout", "text", "colors")),
    Case("make it night", is_edit=True, keep=("framing",), night=True),
    # Edits with reference images: what a reference sets is never left as in the source.
    Case(
        "change the background to a sunlit terrace with warm golden tones, close-up",
        is_edit=True,
        references=("style",),
        given=("setting", "composition", "lighting", "palette"),
    ),
    Case(
        "restyle this photo",
        is_edit=True,
        references=("style",),
        keep=("framing",),
        left_open=("style",),
    ),
    Case("recolour the sofa to match the reference", is_edit=True, references=("color",)),
    Case(
        "put the bottle on a marble counter",
        is_edit=True,
        references=("style", "composition"),
        keep=("product_angle",),
        setting="on a marble counter",
    ),
    # Product shots on coloured backdrops: the backdrop colour is the setting.
    Case(
        "a red sneaker on white",
        use_case="product",
        given=("subject", "setting", "palette"),
        setting="on white",
    ),
    Case("perfume bottle on a pink background", use_case="product", setting="on a pink background"),
    Case("wireless earbuds against teal", given=("setting", "palette"), setting="against teal"),
    Case("lipstick on black", use_case="product", given=("setting",), setting="on black"),
    Case("a desk lamp on white, product photo", use_case="product", setting="on white"),
    Case("a beach towel on a yellow background", setting="on a yellow background"),
    Case("coffee beans on dark brown, top-down", given=("composition",), setting="on dark brown"),
    Case("a cup of matcha on sage green, overhead", setting="on sage green"),
    Case("ceramic vase against a terracotta wall", setting="against a terracotta wall"),
    Case("headphones on a seamless grey backdrop", use_case="product", setting="grey backdrop"),
    Case("a chocolate bar on a cream backdrop", given=("subject",), setting="on a cream backdrop"),
    Case("granola bar on a mustard yellow backdrop", setting="on a mustard yellow backdrop"),
    # Framing words: a studio shot is set in a studio; a protein bar is not a place.
    Case(
        "studio shot of a red sneaker",
        use_case="product",
        given=("subject", "setting", "palette"),
        setting="studio shot",
    ),
    Case("studio portrait of a ballet dancer", use_case="portrait", setting="studio portrait"),
    Case(
        "instagram ad for a vegan protein bar, bold text SAVE 20%",
        use_case="ad",
        style="studio-product",
        text='"SAVE 20%"',
        left_open=("setting",),
    ),
    Case("promo shot of a chocolate bar for a sale", use_case="ad", left_open=("setting",)),
    Case("a bartender pouring a negroni at a cocktail bar", setting="at a cocktail bar"),
    Case("a bouquet of tulips on a lilac background, soft light", given=("lighting",)),
    Case("a red apple on a red background", setting="on a red background"),
    Case("sunglasses on hot pink, hard shadows", given=("lighting",), setting="on hot pink"),
    Case("packshot of a gold wristwatch on black velvet", setting="on black velvet"),
    Case("product photo of a skateboard against an orange wall", setting="against an orange wall"),
    Case(
        "Amazon main image of a blender on pure white",
        use_case="ecommerce",
        setting="on pure white",
    ),
    Case("etsy listing of a knitted beanie on a beige background", use_case="ecommerce"),
    # Ads and thumbnails with text: quoted words, or the words after text, headline, caption,
    # title or saying, are the text slot and nothing else.
    Case(
        "facebook ad for running shoes, headline Run Further", use_case="ad", text='"Run Further"'
    ),
    Case("billboard for an energy drink, caption: Stay Wild", use_case="ad", text='"Stay Wild"'),
    Case(
        "print ad for a granola bar on a yellow background, text: Crunch Time",
        use_case="ad",
        setting="on a yellow background",
        text='"Crunch Time"',
    ),
    Case(
        "promo poster for a jazz night, title Blue Note Sessions",
        use_case="ad",
        night=True,
        text='"Blue Note Sessions"',
        left_open=("palette",),
    ),
    Case(
        "ad for a coffee subscription saying first bag free", use_case="ad", text='"first bag free"'
    ),
    Case(
        "sale banner for sneakers on a red background, text 50% OFF",
        use_case="banner",
        setting="on a red background",
        text='"50% OFF"',
    ),
    Case(
        "social media ad for a candle shop, cozy mood, text Light Up Your Evening",
        use_case="ad",
        given=("mood",),
        text='"Light Up Your Evening"',
        left_open=("lighting",),
    ),
    Case(
        "ad for a vegan burger, the headline says Plants Taste Better",
        use_case="ad",
        text='"Plants Taste Better"',
    ),
    Case(
        "linkedin ad for a cybersecurity webinar with the words Zero Trust Summit",
        use_case="ad",
        text='"Zero Trust Summit"',
    ),
    Case(
        "luxury watch ad on black, headline Time Well Spent",
        use_case="ad",
        setting="on black",
        text='"Time Well Spent"',
    ),
    Case(
        "ad for a gin brand, bottle against emerald green, gold text THE NEW CLASSIC",
        use_case="ad",
        setting="against emerald green",
        text='"THE NEW CLASSIC"',
    ),
    Case(
        "YouTube thumbnail, shocked man pointing at a laptop, text I QUIT MY JOB",
        use_case="thumbnail",
        text='"I QUIT MY JOB"',
    ),
    Case(
        "thumbnail for a cooking video with text 5 MINUTE PASTA",
        use_case="thumbnail",
        text='"5 MINUTE PASTA"',
    ),
    Case(
        "youtube thumbnail with the caption DON'T BUY THIS, on a bright yellow background",
        use_case="thumbnail",
        setting="on a bright yellow background",
        text='"DON\'T BUY THIS"',
        left_open=("constraints",),
    ),
    Case(
        "podcast cover, two hosts laughing, title The Late Shift",
        use_case="thumbnail",
        text='"The Late Shift"',
    ),
    Case(
        "gaming thumbnail, text GAME OVER in red letters",
        use_case="thumbnail",
        given=("palette",),
        text='"GAME OVER"',
    ),
    Case(
        'thumbnail of a chef tasting soup, text "TOO SALTY?"',
        use_case="thumbnail",
        text='"TOO SALTY?"',
    ),
    Case(
        "a neon sign saying OPEN LATE in a rainy alley at night",
        night=True,
        setting="in a rainy alley at night",
        text='"OPEN LATE"',
    ),
    Case("birthday card with the words Happy 30th Maya, pastel balloons", text='"Happy 30th Maya"'),
    Case("coffee shop chalkboard that reads Today's Special", text='"Today\'s Special"'),
    Case("poster for a film festival, no text", use_case="ad", left_open=("text",)),
    Case("banner for a bakery with space for text", use_case="banner", left_open=("text",)),
    Case(
        "hero image for a travel site, text on the left, photo of a forest on the right",
        use_case="banner",
        left_open=("text",),
    ),
    # Portraits and scenes with mood words: the mood is given, and a dark mood is neither night
    # nor a reason for bright fills.
    Case("dark moody", dark=True, given=("mood",), left_open=("lighting",)),
    Case("dark moody portrait of a violinist", use_case="portrait", dark=True, given=("mood",)),
    Case(
        "dark and moody product shot of a whiskey bottle",
        use_case="product",
        dark=True,
        given=("mood",),
    ),
    Case(
        "moody portrait of a fisherman, overcast",
        use_case="portrait",
        dark=True,
        given=("mood", "lighting"),
    ),
    Case(
        "mysterious portrait of a woman in a hooded cloak, dark",
        use_case="portrait",
        dark=True,
        given=("mood",),
    ),
    Case("gloomy portrait of a poet", use_case="portrait", dark=True, given=("mood",)),
    Case(
        "thumbnail with headline: 10 Tips for Better Sleep, dark moody bedroom",
        use_case="thumbnail",
        dark=True,
        setting="dark moody bedroom",
        text='"10 Tips for Better Sleep"',
    ),
    Case(
        "dark moody ad for a leather wallet on black",
        use_case="ad",
        dark=True,
        given=("mood",),
        setting="on black",
    ),
    Case(
        "cheerful headshot of a nurse on a light blue background",
        use_case="portrait",
        given=("mood",),
        setting="on a light blue background",
    ),
    Case(
        "serene portrait of a monk against ochre",
        use_case="portrait",
        given=("mood",),
        setting="against ochre",
    ),
    Case(
        "melancholic portrait of an old sailor, muted tones",
        use_case="portrait",
        given=("mood", "palette"),
    ),
    Case(
        "dramatic portrait of a boxer on black",
        use_case="portrait",
        given=("mood",),
        setting="on black",
    ),
    Case("romantic portrait of a couple, dreamy mood", use_case="portrait", given=("mood",)),
    Case(
        "playful portrait of a toddler on a yellow backdrop",
        use_case="portrait",
        given=("mood",),
        setting="on a yellow backdrop",
    ),
    Case(
        "nostalgic portrait of a grandfather, sepia",
        use_case="portrait",
        monochrome=True,
        given=("mood", "palette"),
    ),
    Case(
        "cozy portrait of a grandmother knitting, warm lamplight",
        use_case="portrait",
        given=("mood", "lighting"),
    ),
    Case("calm portrait of a yoga teacher at sunrise", use_case="portrait", given=("mood",)),
    Case("a bowl of dark chocolate ice cream on a pink background", setting="on a pink background"),
    # Light and places the word lists did not name: a flash, strobe, neon sign or low sun is the
    # lighting, and what stands on, against, in or at an unlisted place is set there.
    Case("portrait of a chef, harsh direct flash", use_case="portrait", given=("lighting",)),
    Case(
        "red running shoe on wet concrete, hard flash",
        given=("lighting",),
        setting="on wet concrete",
        palette="red",
    ),
    Case(
        "product shot of a running shoe on wet concrete, low angle, neon-lit",
        use_case="product",
        given=("composition", "lighting"),
        setting="on wet concrete",
    ),
    Case("a paper boat on a pond", setting="on a pond"),
    Case("red running shoe on a concrete floor", setting="on a concrete floor", palette="red"),
    Case("street portrait of a skater, on-camera flash", given=("lighting",)),
    Case("fashion editorial of a model in a sequin dress, ring flash", given=("lighting",)),
    Case("a dancer mid-leap frozen by a strobe", given=("lighting",)),
    Case("nightclub crowd under strobes", night=True, given=("lighting",)),
    Case("a cyclist silhouetted against the setting sun", given=("lighting",)),
    Case("a ramen stall under neon signs", given=("lighting",)),
    Case("a monk reading by candle flame", given=("lighting",)),
    Case("a lizard on a rock in harsh midday sun", given=("lighting",), setting="on a rock"),
    Case(
        "rain-soaked taxi on asphalt, neon reflections", given=("lighting",), setting="on asphalt"
    ),
    Case(
        "a vintage car on cobblestones, sodium streetlights",
        given=("lighting",),
        setting="on cobblestones",
    ),
    Case(
        "a skateboarder in an empty swimming pool, strobe",
        given=("lighting",),
        setting="in an empty swimming pool",
    ),
    Case("a fishing village on a cliff, overcast", given=("lighting",), setting="on a cliff"),
    Case("a hiker on a ridge, overcast", given=("lighting",), setting="on a ridge"),
    Case("a glass of whiskey on a bar top, backlit", given=("lighting",), setting="on a bar top"),
    Case(
        "a cat on a radiator, backlight from the window",
        given=("lighting",),
        setting="on a radiator",
    ),
    Case(
        "a jellyfish in a dark aquarium, backlit",
        given=("lighting",),
        setting="in a dark aquarium",
    ),
    Case(
        "a pumpkin on a porch at night, lit only by candles",
        night=True,
        given=("lighting",),
        setting="on a porch at night",
    ),
    Case(
        "a wristwatch on a slab of slate, strobe-lit",
        use_case="product",
        given=("lighting",),
        setting="on a slab of slate",
    ),
    Case(
        "a violinist in a subway tunnel, fluorescent light",
        given=("lighting",),
        setting="in a subway tunnel",
    ),
    Case("a teapot on a tatami mat", setting="on a tatami mat"),
    Case("a heron in a reed bed", setting="in a reed bed"),
    Case("a bonsai tree on a windowsill", setting="on a windowsill"),
    Case("a surfer at the crest of a wave, backlit", setting="at the crest of a wave"),
    Case("sneakers on a basketball court, golden hour", setting="on a basketball court"),
    Case("a child in a yellow raincoat on a pier", setting="on a pier", palette="yellow"),
    Case(
        "navy blue sofa in a sunlit loft",
        given=("lighting",),
        setting="in a sunlit loft",
        palette="navy blue",
    ),
    Case("red lipstick on a terrazzo tabletop", use_case="product", palette="red"),
    Case("a yellow kayak on a glacier lake", setting="on a glacier lake", palette="yellow"),
    # What is worn, pointed at, when it is or what is on sale is no place; a colour on the subject
    # gives the palette, which holds the colour and not the subject.
    Case("a man in a grey suit pointing at a whiteboard", palette="grey", left_open=("setting",)),
    Case("portrait of a woman in a red dress at dusk", palette="red", left_open=("setting",)),
    Case("banner for a flash sale on headphones", left_open=("lighting", "setting")),
    # A style named in words is given.
    Case("a cat in the style of Van Gogh", given=("style",)),
    Case(
        "retro style poster for a diner, headline: Open 24 Hours",
        use_case="ad",
        given=("style",),
        text='"Open 24 Hours"',
    ),
    # Non-English words.
    Case("Schwarzwälder Kirschtorte auf einem Holztisch", use_case=None),
    Case("一杯のコーヒー、木のテーブルの上"),
    Case("café con leche in a glass, product photo", use_case="product"),
    Case("Smørrebrød with pickled herring, overhead view", style="editorial"),
    Case("a bowl of phở with fresh herbs, no people"),
    # Very long briefs.
    Case(
        "Product shot of an artisanal perfume. " + LONG_PRODUCT_DETAILS * 8,
        use_case="product",
        aspect_ratio=(4, 5),
    ),
    Case(
        "A narrow street in Heidelberg at night. " + LONG_NIGHT_DETAILS * 9,
        night=True,
        style="cinematic",
    ),
)
