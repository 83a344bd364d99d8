"""Places beyond the list of place words: surfaces, and places no list names.

A material is a place only where it ends its noun phrase (`on wet concrete`, not `a marble bust`).
A thing on, against, in or at something no list names is set there (`in a reed bed`, `at the
crest of a wave`), unless the words after the preposition say when it is, in what weather, where
in the frame, how it looks, what it wears or holds, or how its text is lettered, or are another
slot's words (`in watercolour`, `in harsh midday sun`).
"""

import re
from collections.abc import Iterator, Sequence

# `a lizard on warm sand` is on a place; `a bag of sand` and `a sand timer` are things.
SURFACE_WORDS = (
    *("concrete", "asphalt", "tarmac", "gravel", "sand", "pebbles", "cobblestones?", "slate"),
    *("granite", "marble", "terrazzo", "travertine", "moss", "grass", "tiles?", "linen"),
    *("burlap", "velvet", "wood", "planks", "floorboards"),
)
SURFACE = (
    r"(?<!\bof )(?:" + "|".join(SURFACE_WORDS) + r")"
    r"(?=\s*(?:$|[^\w\s-]|(?:and|or|with|in|on|at|under|near|by|beside|behind|below|beneath"
    r"|against|during|after|before|while|for|from|among|amid|across|along)\b))"
)
PLACE_PREPOSITION = re.compile(
    r"\b(?:on top of|in front of|on|atop|against|in|at)\s+(?=\w)", re.IGNORECASE
)
# A preposition's noun phrase ends at the next preposition or joining word.
PHRASE_END_WORDS = frozenset(
    {
        *("on", "in", "at", "against", "atop", "inside", "under", "beneath", "beside", "by"),
        *("near", "over", "above", "among", "amid", "through", "across", "along", "within"),
        *("behind", "below", "of", "with", "and", "or", "for", "from", "to", "into", "onto"),
        *("while", "as", "that", "which", "where", "who", "during", "after", "before"),
    }
)
DETERMINERS = frozenset({"a", "an", "the", "his", "her", "its", "their", "my", "your", "our"})
# After any of the prepositions: when it is, or the state or manner it is in.
NOT_PLACES = frozenset(
    {
        *("night", "midnight", "dusk", "dawn", "daybreak", "nightfall", "sunset", "sunrise"),
        *("twilight", "noon", "midday", "morning", "afternoon", "evening", "daytime", "winter"),
        *("summer", "spring", "autumn", "fall", "moment", "time", "era", "century", "breakfast"),
        *("brunch", "lunch", "dinner", "supper"),
        *("rain", "drizzle", "downpour", "storm", "fog", "mist", "haze", "wind", "breeze"),
        *("shade", "dark", "darkness", "light"),
        *("profile", "focus", "motion", "action", "flight", "mid-air", "midair", "fire", "sale"),
        *("display", "love", "use", "bloom", "pieces", "silhouette", "row", "line", "circle"),
        *("pair", "pairs", "group", "unison", "detail", "shape", "form", "style", "colour"),
        *("color", "work", "play", "rest", "angle", "speed", "scale", "budget", "diet", "camera"),
        *("vacation", "holiday", "phone", "call", "duty", "leash", "progress", "perspective"),
        *("view", "close-up", "closeup", "order", "place", "person", "general", "particular"),
        *("letters", "lettering", "font", "typeface", "capitals", "caps", "uppercase"),
        *("lowercase", "bold", "italics", "script", "text", "words"),
    }
)
# Where in the frame, when that is all the phrase says: `on the left`, not `on a bar top`.
FRAME_POSITIONS = frozenset(
    {
        *("left", "right", "top", "bottom", "center", "centre", "middle", "corner", "upper"),
        *("lower", "far", "foreground", "side", "edge", "distance", "frame", "front", "back"),
        *("half", "third", "thirds"),
    }
)
# After `in`: what is worn, held or served in, not where.
WORN_OR_HELD = frozenset(
    {
        *("suit", "dress", "blazer", "jacket", "coat", "raincoat", "overcoat", "hat", "cap"),
        *("hoodie", "sweater", "jumper", "shirt", "t-shirt", "tee", "blouse", "uniform"),
        *("costume", "gown", "robe", "cloak", "kimono", "apron", "scarf", "jeans", "overalls"),
        *("armor", "armour", "tuxedo", "boots", "glasses", "sunglasses", "mask", "helmet"),
        *("bikini", "swimsuit", "pajamas", "pyjamas", "outfit", "clothes", "attire", "gear"),
        *("leather", "denim", "scrubs", "vest", "cardigan", "parka", "poncho", "sari", "turban"),
        *("hijab", "veil", "crown", "skirt", "trousers", "pants", "shorts", "sneakers", "heels"),
        *("gloves", "socks", "tie", "lingerie", "wetsuit", "sequins", "silk", "lace", "tights"),
        *("hand", "hands", "mouth", "arm", "arms", "lap", "hair", "teeth", "pocket", "pockets"),
        *("fist", "palm", "palms", "glass", "cup", "mug", "bowl", "jar", "bottle", "vase"),
        *("pot", "basket", "box", "bag", "can", "tin", "bucket", "pan", "skillet", "wrapper"),
        *("packaging", "envelope", "cage", "crate", "carton", "pouch", "sleeve", "case"),
        *("teacup", "dish", "cone", "bun", "wrap"),
    }
)
# The word before the preposition that makes it no place: `pointing at`, `printed in`, `sale on`.
NOT_A_PLACE_AFTER = frozenset(
    {
        *("pointing", "points", "pointed", "looking", "looks", "looked", "staring", "stares"),
        *("stared", "smiling", "smiles", "smiled", "laughing", "laughs", "laughed", "gazing"),
        *("gazes", "gazed", "aiming", "aimed", "waving", "waved", "glancing", "glanced"),
        *("shouting", "yelling", "barking", "peering", "grinning", "frowning", "winking"),
        *("nodding", "throwing", "dressed", "clad", "wrapped", "covered", "dipped", "drenched"),
        *("bathed", "soaked", "written", "printed", "rendered", "painted", "drawn", "made"),
        *("coated", "dusted", "glazed", "lettered", "spelled", "spelt", "typed", "framed"),
        *("served", "cast", "carved", "etched", "engraved", "embroidered", "lost", "interested"),
        *("rich", "sale", "sales", "discount", "discounts", "deal", "deals", "offer", "offers"),
        *("off", "savings", "focus", "focused", "based", "take", "twist", "tips", "guide"),
        *("video", "book", "article", "post", "course", "webinar", "talk", "lecture", "series"),
        *("podcast", "essay", "report"),
    }
)
WORD = re.compile(r"[\w'-]+")


def unlisted_place_starts(clause: str, other_terms: Sequence[re.Pattern[str]]) -> Iterator[int]:
    """Where a place may start in `clause`, first to last: each preposition (not the clause's
    first word) whose noun phrase reads as a place; `other_terms` are the other slots' words."""
    for preposition in PLACE_PREPOSITION.finditer(clause):
        before = WORD.findall(clause[: preposition.start()])
        if not before or before[-1].lower() in NOT_A_PLACE_AFTER:
            continue
        if reads_as_place(clause, preposition, other_terms):
            yield preposition.start()


def reads_as_place(
    clause: str, preposition: re.Match[str], other_terms: Sequence[re.Pattern[str]]
) -> bool:
    """Whether the noun phrase after `preposition` names a place: its head word is no time,
    weather or state, after `in` it names no garment or container, it is not only a position
    in the frame, and no other slot's words end on it."""
    phrase = list(noun_phrase(clause, preposition.end()))
    if not phrase:
        return False
    words = [word.lower() for word, _ in phrase]
    head, head_end = words[-1], phrase[-1][1]
    kind = " ".join(preposition.group(0).split()).lower()
    if head in NOT_PLACES or any(character.isdigit() for character in head):
        return False
    # Any word, not only the last: `a man in a grey suit pointing at...` wears the suit.
    if kind == "in" and WORN_OR_HELD.intersection(words):
        return False
    if all(word in FRAME_POSITIONS or word in DETERMINERS for word in words):
        return False
    head_start = head_end - len(head)
    return not any(
        match.start() <= head_start and head_end <= match.end()
        for pattern in other_terms
        for match in pattern.finditer(clause, preposition.start(), head_end)
    )


def noun_phrase(clause: str, start: int) -> Iterator[tuple[str, int]]:
    """The words from `start` to the next preposition or joining word, each with its end."""
    for match in WORD.finditer(clause, start):
        if match.group(0).lower() in PHRASE_END_WORDS:
            return
        yield match.group(0), match.end()
