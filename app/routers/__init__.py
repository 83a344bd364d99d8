"""HTTP routes, one module per resource; each validates, authorizes and calls one service."""

import re
from datetime import date
from typing import Annotated, Any

from fastapi import Query
from pydantic import AwareDatetime, BeforeValidator, WithJsonSchema

from app.ids import id_pattern

# Query times and days name a year from 1970 (ids and day totals count from the Unix epoch)
# to 9998 (a zone or the day after still lands within what a date can hold).
_YEAR = "(?:19[7-9][0-9]|[2-8][0-9]{3}|9[0-8][0-9]{2}|99[0-8][0-9]|999[0-8])"
_TIME_PATTERN = f"^{_YEAR}-[0-9]{{2}}-[0-9]{{2}}[Tt ]"
_DATE_PATTERN = f"^{_YEAR}-[0-9]{{2}}-[0-9]{{2}}$"
_ISO_TIME = re.compile(_TIME_PATTERN)
_ISO_DATE = re.compile(_DATE_PATTERN)

_DESCRIPTIONS = {
    400: "The body could not be parsed (malformed multipart, or JSON nested too deep).",
    401: "Missing or invalid API key.",
    402: "The job's estimated cost would take the tenant's spend this month past its budget.",
    404: "No such object for this tenant.",
    409: "Conflicts with the object's current state or a request in flight.",
    413: "The request body is too large.",
    415: "The body is not of the media type the route takes (JSON; multipart for uploads), "
    "or an image is not of a supported format.",
    422: "The request is invalid; the problem lists what to fix.",
    503: "A dependency is not reachable.",
}


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` entries for these error statuses (app.openapi makes each body a
    problem+json Problem)."""
    return {status: {"description": _DESCRIPTIONS[status]} for status in statuses}


def page_cursor(prefix: str) -> Any:
    """The `cursor` query parameter of a list whose items have ids with this prefix: the
    `next_cursor` of the previous page, which is the id of its last item."""
    return Annotated[
        str | None,
        Query(
            pattern=id_pattern(prefix),
            description="`next_cursor` of the previous page.",
            examples=[f"{prefix}_01JD7Z8Q3N5X2W1V0T9S8R7Q6P"],
        ),
    ]


def _iso_time(value: object) -> object:
    if isinstance(value, str) and not _ISO_TIME.match(value):
        raise ValueError(
            "must be an ISO 8601 time with its zone, such as 2026-12-01T00:00:00Z, "
            "in the years 1970 to 9998"
        )
    return value


# A time in a query string: ISO 8601 with its zone only (pydantic would also read a bare number
# as Unix seconds, which the document does not offer), in the years the pattern states.
QueryTime = Annotated[
    AwareDatetime,
    BeforeValidator(_iso_time),
    WithJsonSchema({"type": "string", "format": "date-time", "pattern": _TIME_PATTERN}),
]


def _iso_date(value: object) -> object:
    if isinstance(value, str) and not _ISO_DATE.match(value):
        raise ValueError("must be an ISO 8601 date, such as 2026-12-01, in the years 1970 to 9998")
    return value


# A day in a query string: YYYY-MM-DD only (not a number of Unix seconds), in the years the
# pattern states.
QueryDate = Annotated[
    date,
    BeforeValidator(_iso_date),
    WithJsonSchema({"type": "string", "format": "date", "pattern": _DATE_PATTERN}),
]
