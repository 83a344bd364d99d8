"""Signed asset URLs: a link to an asset's bytes that works without an API key until it expires.

The signature is HMAC-SHA256 over the asset id and the expiry with a server key: the
`DARKROOM_SIGNING_SECRET` setting, or else a random key kept in `<data_dir>/signing.key`, so the
embedded default needs no configuration and every process sharing the data dir agrees on it.
"""

import base64
import contextlib
import hashlib
import hmac
import math
import os
import secrets
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlencode

from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.errors import NotFound, SignatureInvalid, UrlExpired
from app.models import Asset
from app.services.assets import content_path

KEY_FILE = "signing.key"

_file_keys: dict[Path, bytes] = {}


def signing_key(settings: Settings) -> bytes:
    """The key that signs asset URLs in this deployment."""
    if settings.signing_secret is not None:
        return settings.signing_secret.get_secret_value().encode()
    path = settings.data_dir / KEY_FILE
    if path not in _file_keys:
        _file_keys[path] = _load_or_create_key(path)
    return _file_keys[path]


def _load_or_create_key(path: Path) -> bytes:
    """The key in `path`, first written there if there is none. The new key is written whole to
    a private temporary file and then linked into place, which fails if another process got
    there first; either way every process ends up reading the same key."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=".signing-")
        try:
            with os.fdopen(descriptor, "w") as file:  # mkstemp creates it readable by us only
                file.write(secrets.token_urlsafe(32))
            with contextlib.suppress(FileExistsError):
                os.link(temporary, path)
        finally:
            os.unlink(temporary)
    return path.read_text().strip().encode()


def signature(key: bytes, asset_id: str, expires: int) -> str:
    """The URL-safe signature of a link to `asset_id` valid until the Unix time `expires`."""
    digest = hmac.new(key, f"{asset_id}.{expires}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def signed_content_url(
    settings: Settings, asset_id: str, expires_at: datetime, base_url: str | None = None
) -> str:
    """A URL of the asset's bytes that works without an API key until `expires_at`; absolute
    when a base URL is given, else a path."""
    expires = int(expires_at.timestamp())
    query = urlencode(
        {"expires": expires, "signature": signature(signing_key(settings), asset_id, expires)}
    )
    return f"{(base_url or '').rstrip('/')}{content_path(asset_id)}?{query}"


def expiry(expires_in: int) -> datetime:
    """The moment a URL minted now for `expires_in` seconds stops working, to the second,
    rounded up so it works for at least `expires_in` seconds."""
    return datetime.fromtimestamp(math.ceil(time.time()) + expires_in, UTC)


def check_signature(
    settings: Settings, asset_id: str, expires: int | None, given: str | None
) -> None:
    """Raise SignatureInvalid unless `given` signs this asset and expiry, or UrlExpired when it
    does but the expiry has passed. Compared in constant time."""
    if expires is None or not given:
        raise SignatureInvalid("A signed URL carries both `expires` and `signature`.")
    expected = signature(signing_key(settings), asset_id, expires)
    if not hmac.compare_digest(expected.encode(), given.encode()):
        raise SignatureInvalid("The URL's signature does not match; it was altered or not ours.")
    if expires <= time.time():
        expired_at = datetime.fromtimestamp(expires, UTC).isoformat()
        raise UrlExpired(f"The URL expired at {expired_at}; ask for a new one.")


async def signed_asset(
    session: AsyncSession, settings: Settings, asset_id: str, expires: int | None, given: str | None
) -> Asset:
    """The asset a signed URL names, once its signature and expiry are checked; NotFound if it
    is gone or deleted."""
    check_signature(settings, asset_id, expires, given)
    asset = await session.get(Asset, asset_id)
    if asset is None or asset.deleted_at is not None:
        raise NotFound(f"No asset {asset_id!r}.")
    return asset
