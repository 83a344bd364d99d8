"""Reading colours out of a brief's words: the colour words alone, not the things they colour."""

import re

# Colours are named with the words that shade them (`light blue`, `matte black`, `warm golden
# tones`) and joined (`teal and orange`); the noun they describe is no colour.
COLOUR_SHADES = frozenset(
    {
        *("light", "dark", "pale", "deep", "bright", "soft", "pastel", "hot", "baby", "dusty"),
        *("sage", "powder", "sky", "off", "matte", "muted", "warm", "cool", "rich", "neutral"),
    }
)
COLOUR_JOINERS = frozenset({"and", "&", "or", "/"})
COLOUR_NOUN = re.compile(r"colou?r(?:s|ed)?|tones?|hues?", re.IGNORECASE)
# A word with the brackets, quotes (U+201C, U+201D, U+2018, U+2019) and stops around it left off.
TOKEN = re.compile('[^\\s()\\[\\]{}"\u201c\u201d\u2018\u2019.,;:!?]+')
# Words that end a colour's name when reading back from `colour` or `tones`: `the headline colour`.
FUNCTION_WORDS = frozenset(
    {"a", "an", "the", "and", "or", "of", "with", "in", "on", "at", "by", "to", "for", "from"}
)


def colour_words(part: str, palette_terms: re.Pattern[str]) -> list[str]:
    """The colours `palette_terms` finds in a part, with the words that shade or join them and
    without the nouns they describe: `a light blue vase with gold handles` -> `light blue`,
    `gold`."""
    colours = [match.span() for match in palette_terms.finditer(part)]
    tokens = list(TOKEN.finditer(part))
    words = [token.group(0) for token in tokens]
    coloured = [
        any(start < token.end() and token.start() < end for start, end in colours)
        for token in tokens
    ]
    # The words naming a colour before `colour` or `tones` are colour words: `a pale straw colour`.
    for index in [index for index, word in enumerate(words) if COLOUR_NOUN.fullmatch(word)]:
        for before in range(index - 1, max(index - 3, -1), -1):
            if coloured[before] or words[before].lower() in FUNCTION_WORDS:
                break
            coloured[before] = True
    runs: list[list[str]] = []
    run: list[str] = []
    held: list[str] = []
    for word, is_colour in zip(words, coloured, strict=True):
        if is_colour:
            run += [*held, word]
            held = []
        elif word.lower() in COLOUR_SHADES or (run and word.lower() in COLOUR_JOINERS):
            held.append(word)
        else:
            runs += [run] if run else []
            run, held = [], []
    runs += [run] if run else []
    return [" ".join(run) for run in runs]
