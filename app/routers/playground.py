"""The browser playground: `/` serves a page of static HTML, CSS and ES modules that calls the
public API with a key the person pastes. Left out of the OpenAPI document; installed only while
DARKROOM_PLAYGROUND is on, so `/` is 404 without it."""

import os
from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from starlette.responses import Response
from starlette.types import Scope

STATIC_DIR = Path(__file__).resolve().parent.parent / "playground"
# The page loads nothing from anywhere but Darkroom: no CDN, no web fonts, no outside images;
# result images are fetched with the key and shown as blob: URLs.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' blob: data:; connect-src 'self'; "
    "script-src 'self'; style-src 'self'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)
FILE_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    # Revalidated on every load, so a new release's page never runs an old release's modules.
    "Cache-Control": "no-cache",
}
PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "Referrer-Policy": "no-referrer",
    **FILE_HEADERS,
}

router = APIRouter(include_in_schema=False)


@router.get("/")
async def playground_page() -> FileResponse:
    """The playground's page; its modules and stylesheet are under /playground/."""
    return FileResponse(STATIC_DIR / "index.html", headers=PAGE_HEADERS)


class PlaygroundFiles(StaticFiles):
    """The page's modules and stylesheet, sent with FILE_HEADERS like the page itself."""

    def file_response(
        self,
        full_path: str | os.PathLike[str],
        stat_result: os.stat_result,
        scope: Scope,
        status_code: int = 200,
    ) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        response.headers.update(FILE_HEADERS)
        return response


def install(app: FastAPI) -> None:
    """Serve the page at `/` and its files at `/playground/` (mounts stay out of the spec)."""
    app.include_router(router)
    app.mount("/playground", PlaygroundFiles(directory=STATIC_DIR), name="playground")
