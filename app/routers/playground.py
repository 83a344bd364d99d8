"""The browser playground: `/` serves a page of static HTML, CSS and ES modules that calls the
public API with a key the person pastes. Left out of the OpenAPI document; installed only while
DARKROOM_PLAYGROUND is on, so `/` is 404 without it."""

from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

STATIC_DIR = Path(__file__).resolve().parent.parent / "playground"
# The page loads nothing from anywhere but Darkroom: no CDN, no web fonts, no outside images;
# result images are fetched with the key and shown as blob: URLs.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' blob: data:; connect-src 'self'; "
    "script-src 'self'; style-src 'self'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)
PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # A new release's modules are picked up on the next load.
    "Cache-Control": "no-cache",
}

router = APIRouter(include_in_schema=False)


@router.get("/")
async def playground_page() -> FileResponse:
    """The playground's page; its modules and stylesheet are under /playground/."""
    return FileResponse(STATIC_DIR / "index.html", headers=PAGE_HEADERS)


def install(app: FastAPI) -> None:
    """Serve the page at `/` and its files at `/playground/` (mounts stay out of the spec)."""
    app.include_router(router)
    app.mount("/playground", StaticFiles(directory=STATIC_DIR), name="playground")
