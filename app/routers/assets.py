"""Assets: upload an image, read one, download its bytes."""

from typing import Annotated

from fastapi import APIRouter, Header, Request, Response
from starlette.datastructures import UploadFile

from app import schemas
from app.db import Session
from app.deps import AppSettings, Storage, Tenant
from app.errors import InvalidInput
from app.imaging.codecs import MEDIA_TYPES
from app.routers import problems
from app.services import assets

router = APIRouter(prefix="/v1/assets", tags=["assets"])

IMMUTABLE = "private, max-age=31536000, immutable"


def etag_matches(if_none_match: str, etag: str) -> bool:
    """RFC 9110 weak comparison of If-None-Match against our ETag (`*` matches anything)."""
    tags = [tag.strip().removeprefix("W/") for tag in if_none_match.split(",")]
    return "*" in tags or etag in tags


UPLOAD_BODY = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["file"],
                "properties": {
                    "file": {
                        "type": "string",
                        "format": "binary",
                        "description": "A PNG, JPEG or WebP image.",
                    }
                },
            }
        }
    },
}


async def read_upload(request: Request) -> bytes:
    """The bytes of the multipart field `file`. The body is read here, after authentication,
    so an unauthenticated caller cannot make the server parse a large upload."""
    async with request.form(max_files=1, max_fields=8) as form:
        file = form.get("file")
        if not isinstance(file, UploadFile):
            raise InvalidInput("Send the image as the multipart/form-data field `file`.")
        return await file.read()


@router.post(
    "",
    operation_id="upload_asset",
    summary="Upload an image",
    status_code=201,
    response_model=schemas.Asset,
    responses=problems(400, 401, 413, 415, 422),
    openapi_extra={"requestBody": UPLOAD_BODY},
)
async def upload_asset(
    request: Request,
    response: Response,
    session: Session,
    tenant: Tenant,
    storage: Storage,
    settings: AppSettings,
) -> schemas.Asset:
    """Store an image for later jobs. The format is read from the bytes, never the name."""
    data = await read_upload(request)
    asset = await assets.create_upload(session, storage, tenant, data, settings.max_image_pixels)
    await session.commit()
    response.headers["Location"] = f"/v1/assets/{asset.id}"
    return await assets.asset_view(session, asset)


@router.get(
    "/{asset_id}",
    operation_id="get_asset",
    summary="Get an asset",
    response_model=schemas.Asset,
    responses=problems(401, 404),
)
async def get_asset(asset_id: str, session: Session, tenant: Tenant) -> schemas.Asset:
    """The asset's facts and parents."""
    return await assets.asset_view(session, await assets.get_asset(session, tenant, asset_id))


@router.get(
    "/{asset_id}/content",
    operation_id="get_asset_content",
    summary="Download an asset's bytes",
    response_class=Response,
    responses={
        200: {"description": "The image bytes.", "content": {t: {} for t in MEDIA_TYPES.values()}},
        304: {"description": "Not modified (If-None-Match matched the ETag)."},
    }
    | problems(401, 404),
)
async def get_asset_content(
    asset_id: str,
    session: Session,
    tenant: Tenant,
    storage: Storage,
    if_none_match: Annotated[str | None, Header()] = None,
) -> Response:
    """The bytes with their Content-Type, a strong ETag, and immutable caching."""
    asset = await assets.get_asset(session, tenant, asset_id)
    etag = f'"{asset.content_hash}"'
    headers = {"ETag": etag, "Cache-Control": IMMUTABLE}
    if if_none_match and etag_matches(if_none_match, etag):
        return Response(status_code=304, headers=headers)
    data = await storage.get(asset.storage_key)
    return Response(data, media_type=MEDIA_TYPES[asset.format], headers=headers)
