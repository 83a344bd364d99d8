"""Reading a brief into prompt slots: which of subject, setting, lighting, style... it states."""

import re
from collections.abc import Sequence
from dataclasses import dataclass

from pydantic import BaseModel, Field

from app.prompts.colours import colour_words
from app.prompts.places import SURFACE, unlisted_place_starts

SLOT_NAMES: tuple[str, ...] = (
    "subject",
    "setting",
    "composition",
    "lighting",
    "style",
    "mood",
    "palette",
    "quality",
    "text",
    "constraints",
)
# Text and constraints only ever come from the brief (or the caller's keep list): inventing words
# to render or rules to obey would change what was asked for.
FILLABLE_SLOTS: tuple[str, ...] = SLOT_NAMES[:8]


class PromptSlots(BaseModel):
    """The structured breakdown of an image prompt; a slot is null when nothing fills it."""

    subject: str | None = Field(None, description="What the image shows.")
    setting: str | None = Field(None, description="Where it is: place, background, surface.")
    composition: str | None = Field(None, description="Framing, layout and camera angle.")
    lighting: str | None = Field(None, description="Light sources, direction and quality.")
    style: str | None = Field(None, description="Medium and look: photograph, watercolor...")
    mood: str | None = Field(None, description="The feeling the image should carry.")
    palette: str | None = Field(None, description="Colours and tonality.")
    quality: str | None = Field(None, description="Finish and detail expectations.")
    text: str | None = Field(None, description="Text to render in the image, quoted.")
    constraints: str | None = Field(None, description="What must or must not appear or change.")


def terms(*patterns: str) -> re.Pattern[str]:
    """One case-insensitive pattern matching any of `patterns` as whole words."""
    return re.compile(r"\b(?:" + "|".join(patterns) + r")\b", re.IGNORECASE)


CHROMATIC_WORDS = (
    r"red(?:dish)?",
    "orange",
    "yellow",
    "green",
    "blue",
    "purple",
    "violet",
    "pink",
    "magenta",
    "cyan",
    "teal",
    "turquoise",
    "aqua",
    "navy",
    "crimson",
    "scarlet",
    "maroon",
    "burgundy",
    "emerald",
    "olive",
    "lime",
    "mint",
    "lavender",
    "lilac",
    "coral",
    "peach",
    "salmon",
    # "Golden hour" is light, not a colour choice.
    r"gold(?:en)?(?![- ]hour)",
    "amber",
    "bronze",
    "copper",
    "brown",
    "beige",
    "ochre",
    "indigo",
    "rust",
    "terracotta",
    "mustard",
)
CHROMATIC_TERMS = terms(*CHROMATIC_WORDS)
BACKDROP_COLOUR_WORDS = (*CHROMATIC_WORDS, "black", "white", "gr[ae]y", "silver", "cream", "ivory")
BACKDROP_SHADES = (
    *("light", "dark", "pale", "deep", "bright", "soft", "pastel", "plain", "solid", "pure"),
    *("seamless", "matte", "muted", "hot", "baby", "dusty", "sage", "powder", "sky", "off"),
)
# A backdrop named by its colour alone (`on white`, `against a pale teal`) is where the subject is.
BACKDROP_COLOUR = (
    r"(?:on|against)\s+(?:an?\s+)?(?:(?:" + "|".join(BACKDROP_SHADES) + r")[- ])*"
    r"(?:" + "|".join(BACKDROP_COLOUR_WORDS) + ")"
)

# Words that name a medium. Object words that double as media ("camera", "ink", "pencil",
# "clay", "blender") are left out: a brief about a pencil is not a pencil drawing.
PHOTO_STYLE_WORDS = (
    # `this photo` is the image an edit starts from, not a request for a photographic look.
    r"(?<!this )(?<!the )photo\w*",
    "(?:hyper)?realis(?:m|tic)",
    "dslr",
    r"\d+\s?mm",
    "film still",
    "polaroid",
    "shot on \\w+",
)
DRAWN_STYLE_WORDS = (
    "watercolou?rs?",
    "illustrat\\w*",
    "anime",
    "manga",
    "cartoon\\w*",
    "comic(?: book)? (?:style|art)",
    "line[- ]?art",
    "drawings?",
    "drawn",
    "sketch(?:es|ed|y)?",
    "vector (?:art|illustration|graphics?|logo)",
    "flat (?:design|illustration|vector)",
    "3d (?:render\\w*|model\\w*|art|illustration|style)",
    "cgi",
    "octane render",
    "unreal engine",
    "low[- ]poly",
    "pixel art",
    "voxel\\w*",
    "claymation",
    "clay (?:render|animation|style)",
    "paintings?",
    "painterly",
    "gouache",
    "concept art",
    "matte painting",
    "digital (?:art|painting)",
    "ukiyo-e",
    "woodcut",
    "linocut",
    "engraving",
    "etching",
    "cel[- ]shad\\w*",
    "ghibli",
    "pixar",
    "isometric",
    "paper[- ]?cut (?:art|style)",
    "pop art",
    "impressionis\\w*",
)
OTHER_STYLE_WORDS = (
    "in the style of",
    r"[\w-]+[- ]style",
    "cinematic",
    "art deco",
    "art nouveau",
    "bauhaus",
    "surreal\\w*",
    "minimalis\\w*",
    "editorial",
    "documentary",
    "collage",
)

SLOT_TERMS: dict[str, re.Pattern[str]] = {
    "setting": terms(
        "background",
        "backdrop",
        "beach",
        "forest",
        "woods",
        "jungle",
        "desert",
        "mountains?",
        "hills?",
        "valley",
        "ocean",
        "sea",
        "lake",
        "river",
        "waterfall",
        "underwater",
        "garden",
        "park",
        "meadow",
        "field",
        "snow",
        "city",
        "cityscape",
        "skyline",
        "street",
        "alley",
        "rooftop",
        "village",
        "town",
        "market",
        "harbou?r",
        "bridge",
        "road",
        "highway",
        "kitchen",
        "living room",
        "bedroom",
        "bathroom",
        "office",
        "room",
        "interior",
        "caf[eé]",
        "restaurant",
        # A protein or soap bar is a product; only a place to drink is a setting.
        r"(?:cocktail|wine|sushi|tiki|hotel|rooftop|beach|dive|sports|piano|karaoke|beer) bars?",
        r"(?:at|in|behind|inside) (?:an?|the) (?:[\w-]+ ){0,2}?bar",
        "library",
        "warehouse",
        "castle",
        "temple",
        "church",
        "stage",
        "desk",
        "table",
        "tabletop",
        "countertop",
        "counter",
        "shelf",
        "floor",
        "wall",
        "sky",
        "outer space",
        "galaxy",
        "landscape",
        r"studio(?![- ]light)",
        *("ponds?", "puddles?", "swimming pool", "lagoon", "shore(?:line)?", "coast(?:line)?"),
        *("cliffs?", "canyon", "caves?", "glacier", "dunes?", "marsh", "swamp", "rainforest"),
        *("woodland", "orchard", "vineyard", "farmyard", "barn", "courtyard", "terrace", "patio"),
        *("balcony", "porch", "driveway", "parking lot", "car park", "sidewalk", "plaza"),
        *("piazza", "airport", "runway", "stadium", "pier", "jetty", "boardwalk", "quay"),
        *("marina", "tunnel", "hallway", "corridor", "stair(?:case|well|s)", "attic"),
        *("basement", "cellar", "greenhouse", "workshop", "classroom", "lobby", "skate ?park"),
        *("window ?sills?", "window ledge", "doorstep", "doorway", "riverbank", "waterfront"),
        SURFACE,
        BACKDROP_COLOUR,
    ),
    "composition": terms(
        "close-?ups?",
        "macro",
        "wide shot",
        "wide[- ]angle",
        "medium shot",
        "establishing shot",
        "full[- ]body",
        "full[- ]length",
        "head[- ]and[- ]shoulders",
        "headshot",
        "bust",
        "overhead",
        "top[- ]down",
        "flat[- ]lay",
        "bird'?s[- ]eye",
        "aerial",
        "low[- ]angle",
        "high[- ]angle",
        "dutch angle",
        "eye[- ]level",
        "three[- ]quarters?",
        "in profile",
        r"(?:side|front|rear|top|aerial) view",
        "from (?:above|below|behind)",
        "cent(?:er|re)d",
        "rule of thirds",
        "symmetr\\w*",
        "negative space",
        "copy space",
        "panoram\\w*",
        "framed",
        "framing",
        "composition",
        "pov",
        "over[- ]the[- ]shoulder",
    ),
    "lighting": terms(
        "lighting",
        # "light blue" is a colour and "lightweight" a property, not light.
        r"lights?(?![- ](?:blue|grey|gray|green|pink|brown|purple|yellow|beige|wood|weight))",
        "lit",
        r"(?:moon|sun|candle|back|neon|torch|fire|lamp|dimly|brightly|well|softly|side)[- ]?lit",
        "backlight\\w*",
        "golden[- ]hour",
        "blue[- ]hour",
        "sunlight",
        "sunshine",
        "sunny",
        "daylight",
        "moonlight",
        "candlelight",
        "firelight",
        "lamplight",
        "starlight",
        "glow\\w*",
        "shadows?",
        "chiaroscuro",
        "low[- ]key",
        "high[- ]key",
        "softbox",
        "spotlight",
        "overcast",
        "volumetric",
        "god ?rays",
        "illuminat\\w*",
        # A flash sale or flash drive is no light.
        r"flash(?:es)?(?![- ](?:sale|drive|card|memory|mob|fiction|flood|point|game|deal)s?\b)",
        "strob(?:e|es|ing|oscopic)",
        "speedlights?",
        # A silhouette can be a logo's shape; a silhouetted figure is backlit.
        "silhouetted",
        "contre[- ]jour",
        # A neon sign is a thing and neon pink a colour; light under neon or its signs is light.
        r"(?:under|by|in|beneath) neon",
        r"neon (?:signs|reflections?|haze|tubes)",
        "candle ?flames?",
        "street ?(?:lights?|lamps?)",
        "sodium[- ]vapou?r",
        "sunbeams?",
        "sun ?rays",
        "dappled",
        "bioluminescen\\w*",
        r"(?:harsh|hard|direct|bright|strong|glaring|midday|noon|afternoon|morning|evening|setting"
        r"|rising|low|late|winter|summer|hazy|weak|pale|warm|full) sun",
    ),
    "style": terms(*PHOTO_STYLE_WORDS, *DRAWN_STYLE_WORDS, *OTHER_STYLE_WORDS),
    "mood": terms(
        "mood\\w*",
        "atmospher\\w*",
        "vibe",
        "calm",
        "serene",
        "peaceful",
        "tranquil",
        "dramatic",
        "myster\\w*",
        "eerie",
        "ominous",
        "haunting",
        "co[sz]y",
        "joyful",
        "happy",
        "cheerful",
        "playful",
        "whimsical",
        "melanchol\\w*",
        "gloomy",
        "somb(?:er|re)",
        "romantic",
        "intimate",
        "energetic",
        "nostalgic",
        "dreamy",
        "ethereal",
        "tense",
        "epic",
        "uplifting",
        "hopeful",
        "festive",
        "luxurious",
        "elegant",
        "fun",
        "friendly",
        "inviting",
    ),
    "palette": re.compile(
        terms(
            *CHROMATIC_WORDS,
            "black",
            "white",
            "gr[ae]y",
            "silver",
            "colou?r\\w*",
            "palette",
            "tones?",
            "hues?",
            "pastels?",
            "monochrom\\w*",
            "black[- ]and[- ]white",
            "b&w",
            "gr[ae]yscale",
            "sepia",
            "duotone",
            "vibrant",
            "vivid",
            "muted",
            "(?:de)?saturated",
            "earthy",
            "neon",
        ).pattern
        + r"|#[0-9a-f]{3}(?:[0-9a-f]{3})?\b",
        re.IGNORECASE,
    ),
    "quality": terms(
        "high[- ]res\\w*",
        "hi[- ]res",
        "[48]k",
        "hd",
        "uhd",
        "ultra[- ]detailed",
        "highly detailed",
        "detailed",
        "sharp\\w*",
        "crisp",
        "high[- ]quality",
        "best quality",
        "masterpiece",
        "award[- ]winning",
        "intricate",
        "quality",
    ),
}

CONSTRAINT_TERMS = terms(
    "no",
    "without",
    "avoid",
    "don't",
    "do not",
    "never",
    "must",
    "only",
    "keep",
    "preserve",
    "exclude",
    "excluding",
    "except",
    "unchanged",
)
NEGATION = re.compile(
    r"\b(?:no|without|avoid|don't|do not|never|exclude|excluding)\s+([^,;.!?\n]+)", re.IGNORECASE
)
NEGATED_ITEM_SEPARATOR = re.compile(r"\b(?:or|and|nor)\b|/", re.IGNORECASE)
# A negated item ends where its noun phrase ends: "no people in the background" negates people.
NEGATED_ITEM_END = re.compile(
    r"\b(?:in|on|at|of|with|from|near|behind|around|inside|over|under|visible in)\b", re.IGNORECASE
)
ARTICLES = frozenset({"a", "an", "the", "any", "some"})

QUOTED_TEXT = re.compile(
    r"\"([^\"\n]+)\"|“([^”\n]+)”|«([^»\n]+)»|「([^」\n]+)」|„([^“”\n]+)[“”]"
    r"|(?<![\w'])'([^'\n]+)'(?![\w'])"
)
TEXT_LABELS = r"text|headline|caption|tagline|title|subtitle|slogan|heading|lettering|words?"
# Words to render, unquoted, look like copy: capitalised words and numbers (`SAVE 20%`,
# `Run Further`), joined by small words (`Back to School`).
COPY_WORD = r"[A-Z0-9$€£#%@&+](?:[^\s,;\"“”.!?]|[.!?](?=\S))*[!?]?"
COPY_JOINER = r"(?:a|an|the|to|of|for|and|or|in|on|at|with|my|your|is|&|-)"
COPY = rf"{COPY_WORD}(?:\s+(?:{COPY_JOINER}\s+)*{COPY_WORD})*"
# After a colon the label's words run to the end of the clause (`headline: Summer Nights`).
LABELLED_TEXT = re.compile(rf"\b(?:{TEXT_LABELS})\s*:\s*([^,;\n\"“'«「]+)", re.IGNORECASE)
# Right after a label only copy counts, so `text on the left` names no text; after `saying`
# lower-case words count too (`a mug saying good morning`).
NAMED_TEXT = re.compile(
    rf"(?i:\b(?:{TEXT_LABELS}))\s+({COPY})"
    rf"|(?i:\b(?:saying|says|that reads|which reads))\s+({COPY}|[a-z][^,;\n.!?\"“«「]*)"
)

# Clauses break at commas and semicolons, Latin and CJK (U+3001, U+FF0C, U+FF1B). A Latin sentence
# ends at punctuation and a space (not in `f/1.8`); a CJK one at its full stop or full-width mark.
SEGMENT_BREAK = re.compile("[,;\\n\u3001\uff0c\uff1b]+|(?<=[.!?])\\s+|(?<=[\u3002\uff01\uff1f])")
SETTING_PREPOSITION = re.compile(
    r"\b(?:on top of|in front of|on|in|at|against|inside|under|beneath|beside|by|near|over"
    r"|above|among|amid|through|across|along|within|atop)\b",
    re.IGNORECASE,
)
# "A studio shot of a red sneaker" is about the sneaker; the framing words belong to other slots.
SUBJECT_LEAD = re.compile(
    r"^(?:(?:please|create|generate|make|draw|design|render|paint|show|give me|i want|i need)"
    r"\s+)*(?P<framing>(?:(?:a|an|the|some)\s+)?(?:[\w'-]+\s+){0,3}?"
    r"(?:photo|photograph|picture|image|illustration|painting|render|drawing|portrait|shot"
    r"|close-up|closeup|sketch|visual|banner|thumbnail|logo|icon|poster|ad|post|headshot"
    r"|packshot|artwork|scene)s?)\s+(?:of|for|showing|featuring|depicting)\s+",
    re.IGNORECASE,
)
FILLER_WORDS = frozenset(
    {
        *("a", "an", "the", "and", "or", "of", "with", "in", "on", "at", "by", "to", "for"),
        *("from", "into", "onto", "is", "are", "be", "very", "some", "this", "that", "it", "its"),
        *("style", "look", "feel", "shot", "image", "picture"),
    }
)
WORD = re.compile(r"\w+", re.UNICODE)
EXCERPT_LIMIT = 80
EXCERPT_WORDS = 4


@dataclass(frozen=True)
class BriefReading:
    """What a brief states, slot by slot, and what it rules out."""

    given: dict[str, str]
    negated: tuple[str, ...]
    # The brief without the words it asks to render: `text GOOD NIGHT` sets no night scene.
    description: str


@dataclass(frozen=True)
class Clause:
    """One clause of a brief cut into its framing words, the thing it names and its place:
    `studio shot of a red sneaker on white` -> `studio shot`, `a red sneaker`, `on white`."""

    framing: str
    thing: str
    place: str

    def parts(self) -> list[str]:
        """The clause's words, part by part."""
        return [part for part in (self.framing, self.thing, self.place) if part]

    def setting_excerpts(self) -> list[str]:
        """The clause's words for where it is: the place once one is cut off, listed or not
        (a desk lamp on white is a lamp, not a desk), framing words that name a place (`studio
        shot`), and the thing when it is a place itself (`a beach at dusk`, `a narrow street`)."""
        found = []
        framing = SLOT_TERMS["setting"].search(self.framing)
        if framing:
            found.append(excerpt(self.framing, framing))
        thing = SLOT_TERMS["setting"].search(self.thing)
        if thing and (not self.place or ends_in_place(self.thing)):
            found.append(excerpt(self.thing, thing))
        if self.place:
            match = SLOT_TERMS["setting"].search(self.place)
            found.append(excerpt(self.place, match) if match else shorten_place(self.place))
        return found


def read_brief(brief: str) -> BriefReading:
    """Find the slots a brief states and the things it says must not appear."""
    spans = text_spans(brief)
    description = without_spans(brief, spans)
    segments = split_segments(description)
    clauses = [read_clause(segment) for segment in segments]
    given: dict[str, str] = {}
    subject_at = next((index for index, part in enumerate(segments) if names_something(part)), None)
    if subject_at is not None:
        given["subject"] = clauses[subject_at].thing
    parts = [part for clause in clauses for part in clause.parts()]
    for slot, pattern in SLOT_TERMS.items():
        if slot == "setting":
            value = join_unique(
                [found for clause in clauses for found in clause.setting_excerpts()]
            )
        elif slot == "palette":
            value = join_unique(
                [colour for part in parts for colour in colour_words(part, pattern)]
            )
        else:
            value = excerpts(parts, pattern)
        if value:
            given[slot] = value
    if spans:
        words = dict.fromkeys(words for _, _, words in spans)
        given["text"] = ", ".join(f'"{word}"' for word in words)
    constraints = excerpts(segments, CONSTRAINT_TERMS)
    if constraints:
        given["constraints"] = constraints
    ordered = {slot: given[slot] for slot in SLOT_NAMES if slot in given}
    return BriefReading(given=ordered, negated=negated_items(description), description=description)


def split_segments(brief: str) -> list[str]:
    """The brief's clauses, split at commas, semicolons, line breaks and sentence ends."""
    return [part.strip() for part in SEGMENT_BREAK.split(brief) if part and part.strip()]


def read_clause(segment: str) -> Clause:
    """Cut a clause into framing words, the thing it names and the place it puts it in."""
    lead = SUBJECT_LEAD.match(segment)
    framing, rest = (lead.group("framing"), segment[lead.end() :]) if lead else ("", segment)
    thing, place = split_setting(rest.strip() or segment)
    return Clause(framing=framing.strip(), thing=thing, place=place or "")


def excerpts(segments: Sequence[str], pattern: re.Pattern[str]) -> str | None:
    """The brief's own words around each match of `pattern`, one excerpt per clause."""
    found = []
    for segment in segments:
        match = pattern.search(segment)
        if match:
            found.append(excerpt(segment, match))
    return join_unique(found) if found else None


def excerpt(segment: str, match: re.Match[str]) -> str:
    """The clause itself, or a few words either side of the match when the clause is long."""
    if len(segment) <= EXCERPT_LIMIT:
        return segment
    before = segment[: match.start()].split()[-EXCERPT_WORDS:]
    after = segment[match.end() :].split()[:EXCERPT_WORDS]
    return " ".join([*before, match.group(0), *after])


def shorten_place(place: str) -> str:
    """An unlisted place as written, or its first words when it runs long."""
    if len(place) <= EXCERPT_LIMIT:
        return place
    return " ".join(place.split()[: EXCERPT_WORDS + 1])


def join_unique(values: Sequence[str]) -> str:
    """`values` joined with commas, each once, in order."""
    return ", ".join(dict.fromkeys(values))


def names_something(segment: str) -> bool:
    """Whether a clause has words left once slot vocabulary, quotes and filler words are out."""
    rest = QUOTED_TEXT.sub(" ", segment)
    for pattern in (*SLOT_TERMS.values(), CONSTRAINT_TERMS):
        rest = pattern.sub(" ", rest)
    return any(word.lower() not in FILLER_WORDS for word in WORD.findall(rest))


def split_setting(clause: str) -> tuple[str, str | None]:
    """`a mug on a walnut desk` -> (`a mug`, `on a walnut desk`): the clause is cut at the
    preposition before its first listed place word that has one, or before a place no list
    names (`a paper boat on a pond`), whichever comes first; no place, no split."""
    cuts = [cut for cut in (listed_place_start(clause), unlisted_place_start(clause)) if cut]
    if not cuts:
        return clause, None
    cut = min(cuts)
    return clause[:cut].strip(), clause[cut:].strip()


def listed_place_start(clause: str) -> int | None:
    """Where the preposition before the clause's first listed place word is, if it has one."""
    for place in SLOT_TERMS["setting"].finditer(clause):
        prepositions = [
            match
            for match in SETTING_PREPOSITION.finditer(clause, 0, place.end())
            if 0 < match.start() <= place.start()
        ]
        if prepositions:
            return prepositions[-1].start()
    return None


def unlisted_place_start(clause: str) -> int | None:
    """Where the first place no list names starts, after words that name a thing."""
    other_terms = [pattern for slot, pattern in SLOT_TERMS.items() if slot != "setting"]
    starts = unlisted_place_starts(clause, other_terms)
    return next((start for start in starts if names_something(clause[:start])), None)


def ends_in_place(words: str) -> bool:
    """Whether `words` end on a listed place: `a narrow street`, not `a desk lamp`."""
    end = len(words.rstrip())
    return any(match.end() == end for match in SLOT_TERMS["setting"].finditer(words))


def text_spans(brief: str) -> list[tuple[int, int, str]]:
    """Where the brief names words to render, quoted or after a label, and the words."""
    spans = [
        (*match.span(), next(group for group in match.groups() if group))
        for match in QUOTED_TEXT.finditer(brief)
    ]
    for pattern in (LABELLED_TEXT, NAMED_TEXT):
        for match in pattern.finditer(brief):
            group = next(index for index, value in enumerate(match.groups(), 1) if value)
            words = match.group(group).strip()
            if words and not any(start <= match.start(group) < end for start, end, _ in spans):
                spans.append((match.start(group), match.start(group) + len(words), words))
    return [(start, end, words.strip()) for start, end, words in spans if words.strip()]


def without_spans(brief: str, spans: Sequence[tuple[int, int, str]]) -> str:
    """The brief with the given stretches cut out."""
    for start, end, _ in sorted(spans, reverse=True):
        before, after = brief[:start].rstrip(" "), brief[end:].lstrip(" ")
        space = " " if before and after[:1].isalnum() else ""
        brief = before + space + after
    return brief


def negated_items(brief: str) -> tuple[str, ...]:
    """What the brief rules out: `no people or text` -> (`people`, `text`)."""
    items: list[str] = []
    for match in NEGATION.finditer(brief):
        for part in NEGATED_ITEM_SEPARATOR.split(match.group(1)):
            words = NEGATED_ITEM_END.split(part, maxsplit=1)[0].split()
            words = [word for word in words if word.lower() not in ARTICLES][:3]
            if words:
                items.append(" ".join(words).lower())
    return tuple(dict.fromkeys(items))
