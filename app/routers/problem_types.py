"""GET /problems/{slug}: the page each problem `type` URI points at, saying what it means and
what to do; served without an API key, as a link in an error must open anywhere."""

from typing import Annotated

from fastapi import APIRouter, Path
from fastapi.responses import PlainTextResponse

from app.errors import NotFound, problem_page
from app.routers import problems

router = APIRouter(tags=["problems"])


@router.get(
    "/problems/{slug}",
    operation_id="get_problem_type",
    summary="Describe a problem type",
    response_class=PlainTextResponse,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}, **problems(404)},
)
async def get_problem_type(
    slug: Annotated[
        str, Path(description="The last part of a problem's `type`.", examples=["not-found"])
    ],
) -> PlainTextResponse:
    """What the problem type means and what a caller should do about it, as plain text."""
    page = problem_page(slug)
    if page is None:
        raise NotFound(f"No problem type {slug!r}.")
    return PlainTextResponse(page)
