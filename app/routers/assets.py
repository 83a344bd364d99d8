"""Assets: upload an image, list them, read one, download its bytes, mint a signed URL of them,
delete one."""

from typing import Annotated

from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response
from fastapi.responses import RedirectResponse, StreamingResponse
from starlette.datastructures import UploadFile

from app import models
from app.db import Session
from app.deps import (
    AppSettings,
    BearerCredentials,
    Context,
    IdempotencyKey,
    Storage,
    Tenant,
    get_tenant,
)
from app.errors import InvalidInput
from app.imaging.codecs import MEDIA_TYPES
from app.routers import QueryTime, page_cursor, problems
from app.schemas.assets import Asset, AssetList, AssetPage, AssetSource
from app.schemas.signed_urls import SignedUrl, SignedUrlRequest
from app.services import assets, signing

router = APIRouter(prefix="/v1/assets", tags=["assets"])

# Declared as binary so that generated clients hand back the bytes.
BINARY = {"schema": {"type": "string", "format": "binary"}}


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
                "additionalProperties": False,
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
        unknown = sorted(set(form) - {"file"})
        if unknown:
            raise InvalidInput(f"Unknown multipart field {unknown[0]!r}; send only `file`.")
        file = form.get("file")
        if not isinstance(file, UploadFile):
            raise InvalidInput("Send the image as the multipart/form-data field `file`.")
        return await file.read()


@router.post(
    "",
    operation_id="upload_asset",
    summary="Upload an image",
    status_code=201,
    response_model=Asset,
    responses=problems(400, 401, 413, 415, 422, 503),
    openapi_extra={"requestBody": UPLOAD_BODY},
)
async def upload_asset(
    request: Request,
    response: Response,
    session: Session,
    tenant: Tenant,
    storage: Storage,
    settings: AppSettings,
    idempotency_key: IdempotencyKey = None,
) -> Asset:
    """Store an image for later jobs. The format is read from the bytes, never the name."""
    data = await read_upload(request)
    asset = await assets.create_upload(session, storage, tenant, data, settings.max_image_pixels)
    await session.commit()
    response.headers["Location"] = f"/v1/assets/{asset.id}"
    return await assets.asset_view(session, asset)


@router.get(
    "",
    operation_id="list_assets",
    summary="List assets",
    response_model=AssetPage,
    responses=problems(401, 422),
)
async def list_assets(
    session: Session,
    tenant: Tenant,
    source: Annotated[AssetSource | None, Query(description="Only assets of this source.")] = None,
    job_id: Annotated[
        str | None, Query(max_length=64, description="Only the outputs of this job.")
    ] = None,
    created_after: Annotated[
        QueryTime | None,
        Query(description="Only assets stored after this time (ISO 8601, with its zone)."),
    ] = None,
    created_before: Annotated[
        QueryTime | None,
        Query(description="Only assets stored before this time (ISO 8601, with its zone)."),
    ] = None,
    cursor: page_cursor("ast") = None,
    limit: Annotated[int, Query(ge=1, le=100, description="Assets per page.")] = 20,
) -> AssetPage:
    """The tenant's assets (uploads, references, outputs and exports), newest first, a page at a
    time; deleted ones are not listed."""
    only = assets.AssetFilter(source, job_id, created_after, created_before)
    return await assets.list_assets(session, tenant, only, cursor, limit)


@router.get(
    "/{asset_id}",
    operation_id="get_asset",
    summary="Get an asset",
    response_model=Asset,
    responses=problems(401, 404),
)
async def get_asset(asset_id: str, session: Session, tenant: Tenant) -> Asset:
    """The asset's facts and parents."""
    return await assets.asset_view(session, await assets.get_asset(session, tenant, asset_id))


@router.get(
    "/{asset_id}/lineage",
    operation_id="get_asset_lineage",
    summary="Get an asset's ancestry",
    response_model=AssetList,
    responses=problems(401, 404),
)
async def get_asset_lineage(asset_id: str, session: Session, tenant: Tenant) -> AssetList:
    """Every asset this one was made from, directly or through others (sources, masks,
    references, the outputs they came from), oldest first, ending with the asset itself."""
    asset = await assets.get_asset(session, tenant, asset_id)
    return AssetList(data=await assets.lineage(session, asset))


async def content_asset(
    asset_id: Annotated[str, Path(examples=["ast_01JD7Z8Q3N5X2W1V0T9S8R7Q6P"])],
    request: Request,
    session: Session,
    settings: AppSettings,
    credentials: BearerCredentials,
    expires: Annotated[
        int | None, Query(description="Of a signed URL: when it expires, in Unix seconds.")
    ] = None,
    signature: Annotated[
        str | None, Query(max_length=100, description="Of a signed URL: its signature.")
    ] = None,
) -> models.Asset:
    """The asset whose bytes are asked for: the caller's own, by API key, unless the URL is
    signed (see `create_asset_url`) and not yet expired."""
    if expires is None and signature is None:
        tenant = await get_tenant(request, session, credentials)
        return await assets.get_asset(session, tenant, asset_id)
    return await signing.signed_asset(session, settings, asset_id, expires, signature)


ContentAsset = Annotated[models.Asset, Depends(content_asset)]
IfNoneMatch = Annotated[str | None, Header()]
# The headers of a download that say what it is, declared on GET's and HEAD's 200.
CONTENT_HEADERS = {
    "ETag": {
        "description": "The content's SHA-256, quoted; send it as If-None-Match to revalidate.",
        "schema": {"type": "string"},
    },
    "Content-Disposition": {
        "description": "`inline` for an image, `attachment` for an export's zip bundle, with "
        "the file name `<asset id>.<extension>`.",
        "schema": {"type": "string"},
        "example": 'inline; filename="ast_01JD7Z8Q3N5X2W1V0T9S8R7Q6P.png"',
    },
}
# What GET and HEAD of the content answer besides 200.
CONTENT_RESPONSES = {
    304: {"description": "Not modified (If-None-Match matched the ETag)."},
    403: {"description": "The signed URL was altered (`signature-invalid`) or expired."},
} | problems(401, 404)
# An API key, or none when the URL is signed (`expires` and `signature`).
KEY_OR_SIGNED_URL = {"security": [{"HTTPBearer": []}, {}]}
# What only GET answers: a redirect to the store, or the store's absence.
REDIRECT_RESPONSE = {
    307: {
        "description": "The bytes are at a short-lived presigned URL of the asset store "
        "(only when the deployment asks for it).",
        "headers": {"Location": {"schema": {"type": "string"}}},
    }
}


@router.get(
    "/{asset_id}/content",
    operation_id="get_asset_content",
    summary="Download an asset's bytes",
    response_class=Response,
    responses={
        200: {
            "description": "The bytes.",
            "headers": CONTENT_HEADERS,
            "content": {t: BINARY for t in MEDIA_TYPES.values()},
        },
    }
    | CONTENT_RESPONSES
    | REDIRECT_RESPONSE
    | problems(503),
    openapi_extra=KEY_OR_SIGNED_URL,
)
async def get_asset_content(
    asset: ContentAsset,
    storage: Storage,
    settings: AppSettings,
    if_none_match: IfNoneMatch = None,
) -> Response:
    """The bytes with their Content-Type, a strong ETag, immutable caching and a file name
    (`<asset id>.<extension>`), streamed from the asset store; or, when the deployment sets
    `DARKROOM_STORAGE_REDIRECT_SECONDS` and keeps assets in S3, a 307 to a short-lived
    presigned URL of the bucket. Needs an API key, unless the URL is signed (see
    `create_asset_url`) and not yet expired."""
    headers = assets.content_headers(asset)
    if if_none_match and etag_matches(if_none_match, headers["ETag"]):
        return Response(status_code=304, headers=headers)
    if settings.storage_redirect_seconds:
        url = await storage.presigned_url(asset.storage_key, settings.storage_redirect_seconds)
        if url is not None:
            # The presigned URL expires, so the redirect itself must not be cached.
            return RedirectResponse(url, status_code=307, headers={"Cache-Control": "no-store"})
    chunks = await storage.open(asset.storage_key)
    headers["Content-Length"] = str(asset.bytes)
    return StreamingResponse(chunks, media_type=MEDIA_TYPES[asset.format], headers=headers)


@router.head(
    "/{asset_id}/content",
    operation_id="head_asset_content",
    summary="Read an asset's download headers",
    response_class=Response,
    responses={
        200: {
            "description": "The headers of the download, without its bytes.",
            "headers": CONTENT_HEADERS,
        }
    }
    | CONTENT_RESPONSES,
    openapi_extra=KEY_OR_SIGNED_URL,
)
async def head_asset_content(asset: ContentAsset, if_none_match: IfNoneMatch = None) -> Response:
    """What `get_asset_content` answers, headers only (Content-Length, Content-Type, ETag,
    caching, file name), for caches and download managers; the same API key or signed URL is
    needed."""
    headers = assets.content_headers(asset)
    if if_none_match and etag_matches(if_none_match, headers["ETag"]):
        return Response(status_code=304, headers=headers)
    # No body, but the length of the one GET sends (else Starlette would declare 0).
    headers["Content-Length"] = str(asset.bytes)
    return Response(media_type=MEDIA_TYPES[asset.format], headers=headers)


@router.post(
    "/{asset_id}/url",
    operation_id="create_asset_url",
    summary="Mint a signed download URL",
    response_model=SignedUrl,
    responses={200: {"description": "The signed URL."}} | problems(401, 404, 415, 422),
)
async def create_asset_url(
    asset_id: str,
    request: Request,
    session: Session,
    tenant: Tenant,
    settings: AppSettings,
    body: SignedUrlRequest | None = None,
) -> SignedUrl:
    """A URL of the asset's bytes that works without an API key until it expires, for handing
    to a browser, a CDN or another service."""
    asset = await assets.get_asset(session, tenant, asset_id)
    expires_at = signing.expiry((body or SignedUrlRequest()).expires_in)
    base_url = settings.public_url or str(request.base_url)
    url = signing.signed_content_url(settings, asset.id, expires_at, base_url)
    return SignedUrl(url=url, expires_at=expires_at)


@router.delete(
    "/{asset_id}",
    operation_id="delete_asset",
    summary="Delete an asset",
    status_code=204,
    response_class=Response,
    responses={204: {"description": "Deleted."}} | problems(401, 404, 409),
)
async def delete_asset(
    asset_id: Annotated[str, Path(examples=["ast_01JD7Z8Q3N5X2W1V0T9S8R7Q6P"])],
    session: Session,
    tenant: Tenant,
    context: Context,
) -> Response:
    """Delete the asset: it answers 404 from now on, its content and signed URLs too. Its stored
    file goes once no asset of any tenant has the same content. The lineage of assets made from
    it shows it as deleted. 409 while a queued or running job takes it as input."""
    keys = await assets.delete_asset(session, tenant, asset_id)
    await session.commit()
    await assets.release_content(context.sessionmaker, context.storage, keys)
    return Response(status_code=204)
