"""Asset bytes, content-addressed: in a local directory (the embedded default) or in an
S3-compatible bucket (`DARKROOM_STORAGE_URL=s3://bucket/prefix`), which every API and worker
process on every machine can reach."""

import asyncio
import logging
import os
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol

import obstore
from obstore.exceptions import BaseError, NotFoundError
from obstore.store import S3Store

from app.config import Settings
from app.errors import ServiceUnavailable

logger = logging.getLogger(__name__)

# Prefix of a file being written; one left behind by a crash is removed with unreferenced files.
INCOMING_PREFIX = ".incoming-"
# The key readiness asks the bucket about; nothing is ever stored under it.
READINESS_KEY = "readyz"


def content_key(content_hash: str, image_format: str) -> str:
    """The storage key of some content: its SHA-256, fanned out by its first two characters."""
    return f"{content_hash[:2]}/{content_hash}.{image_format}"


class StorageUnavailable(ServiceUnavailable):
    """The asset store did not answer (after its retries) or refused us: a 503 to a reader, a
    failed output to a job."""


class Storage(Protocol):
    """Where asset bytes live. Keys are content-addressed, so writing a key twice is harmless:
    the bytes are the same. A write is whole or absent, never half there."""

    async def put(self, key: str, data: bytes, media_type: str | None = None) -> None:
        """Store bytes under a key (with their media type, where the store keeps one)."""

    async def get(self, key: str) -> bytes:
        """The bytes stored under a key; FileNotFoundError if there are none."""

    async def open(self, key: str) -> AsyncIterator[bytes]:
        """The bytes under a key, in chunks; the store is reached before this returns, so a
        failure surfaces before a response starts."""

    async def presigned_url(self, key: str, seconds: int) -> str | None:
        """A URL the store itself serves the bytes at for `seconds`, or None if it serves none."""

    async def delete(self, key: str) -> None:
        """Remove the bytes under a key, if any."""

    async def keys_older_than(self, seconds: float) -> list[str]:
        """Every key (and abandoned partial write) last modified more than `seconds` ago."""

    async def check(self) -> None:
        """Raise if the store cannot be reached with these settings (for readiness)."""


def open_storage(settings: Settings) -> Storage:
    """The store the settings name: the bucket of `storage_url`, else the local asset dir."""
    if settings.storage_url is None:
        return LocalStorage(settings.asset_dir)
    return ObjectStorage(settings)


class LocalStorage:
    """Files under one directory; writing the same key twice is harmless (same bytes)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    async def put(self, key: str, data: bytes, media_type: str | None = None) -> None:
        """Store bytes under a key, atomically: readers see all of it or nothing."""
        await asyncio.to_thread(self._put, key, data)

    async def get(self, key: str) -> bytes:
        """The bytes stored under a key."""
        return await asyncio.to_thread((self.root / key).read_bytes)

    async def open(self, key: str) -> AsyncIterator[bytes]:
        """The bytes in one chunk: an asset is bounded in size, and a file read has no
        connection to fail halfway."""
        return _single_chunk(await self.get(key))

    async def presigned_url(self, key: str, seconds: int) -> str | None:
        """None: only the API serves local files."""
        return None

    async def delete(self, key: str) -> None:
        """Remove the bytes under a key, if any."""
        await asyncio.to_thread((self.root / key).unlink, missing_ok=True)

    async def keys_older_than(self, seconds: float) -> list[str]:
        """Every key (and abandoned partial write) last modified more than `seconds` ago."""
        return await asyncio.to_thread(self._keys_older_than, time.time() - seconds)

    async def check(self) -> None:
        """The asset directory exists, or can be made, and this process may write to it."""
        await asyncio.to_thread(self._check)

    def _check(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        if not os.access(self.root, os.W_OK | os.X_OK):
            raise PermissionError(f"{self.root} is not writable")

    def _keys_older_than(self, cutoff: float) -> list[str]:
        if not self.root.exists():
            return []
        return [
            path.relative_to(self.root).as_posix()
            for path in self.root.rglob("*")
            if path.is_file() and path.stat().st_mtime < cutoff
        ]

    def _put(self, key: str, data: bytes) -> None:
        path = self.root / key
        if path.exists():
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=INCOMING_PREFIX)
        try:
            with os.fdopen(handle, "wb") as file:
                file.write(data)
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise


async def _single_chunk(data: bytes) -> AsyncIterator[bytes]:
    yield data


class ObjectStorage:
    """Objects in an S3-compatible bucket (AWS, MinIO, R2, GCS interop) under the prefix of
    `storage_url`, through obstore. A PUT is atomic, so an object is whole or absent; a
    connection error or 5xx is retried `storage_retries` times with a short backoff before it
    becomes StorageUnavailable. Settings left unset fall back to the standard `AWS_*`
    variables, which obstore reads itself."""

    def __init__(self, settings: Settings) -> None:
        self.store = S3Store.from_url(
            settings.storage_url,
            config=_s3_config(settings),
            client_options={
                # The endpoint's scheme is the operator's choice (a MinIO on the private
                # network speaks plain HTTP); AWS's own endpoints are HTTPS.
                "allow_http": True,
                "connect_timeout": timedelta(seconds=min(settings.storage_timeout_seconds, 2)),
                "timeout": timedelta(seconds=settings.storage_timeout_seconds),
            },
            retry_config={
                "max_retries": settings.storage_retries,
                "backoff": {"init_backoff": timedelta(milliseconds=100), "base": 2},
                "retry_timeout": timedelta(seconds=settings.storage_timeout_seconds),
            },
        )

    async def put(self, key: str, data: bytes, media_type: str | None = None) -> None:
        """Store bytes under a key; the same key again overwrites it with the same bytes, which
        also refreshes its age for `darkroom gc`."""
        attributes = {"Content-Type": media_type} if media_type else None
        async with _answering("store", key):
            await obstore.put_async(self.store, key, data, attributes=attributes)

    async def get(self, key: str) -> bytes:
        """The bytes stored under a key."""
        async with _answering("read", key):
            result = await obstore.get_async(self.store, key)
            return bytes(await result.bytes_async())

    async def open(self, key: str) -> AsyncIterator[bytes]:
        """The object's bytes as the store sends them."""
        async with _answering("read", key):
            result = await obstore.get_async(self.store, key)
        return _chunks(result.stream())

    async def presigned_url(self, key: str, seconds: int) -> str | None:
        """A presigned GET of the object, valid for `seconds`; signed here, without a request."""
        async with _answering("sign a URL of", key):
            return await obstore.sign_async(self.store, "GET", key, timedelta(seconds=seconds))

    async def delete(self, key: str) -> None:
        """Remove the object under a key, if any."""
        async with _answering("delete", key):
            await obstore.delete_async(self.store, key)

    async def keys_older_than(self, seconds: float) -> list[str]:
        """Every key under the prefix last modified more than `seconds` ago."""
        cutoff = datetime.now(UTC) - timedelta(seconds=seconds)
        keys: list[str] = []
        async with _answering("list", "the bucket"):
            async for batch in obstore.list(self.store, chunk_size=1000):
                keys.extend(meta["path"] for meta in batch if meta["last_modified"] < cutoff)
        return keys

    async def check(self) -> None:
        """A HEAD request under the prefix answers (a missing object is an answer: the bucket
        is there and the credentials are taken)."""
        async with _answering("check", "the bucket"):
            with suppress(FileNotFoundError, NotFoundError):
                await obstore.head_async(self.store, READINESS_KEY)


def _s3_config(settings: Settings) -> dict[str, str]:
    """The S3 settings that are set; obstore takes the rest from the `AWS_*` variables."""
    secret = settings.storage_secret_access_key
    values = {
        "endpoint": settings.storage_endpoint,
        "region": settings.storage_region,
        "access_key_id": settings.storage_access_key_id,
        "secret_access_key": secret.get_secret_value() if secret else None,
    }
    return {name: value for name, value in values.items() if value}


async def _chunks(stream: AsyncIterator[object]) -> AsyncIterator[bytes]:
    async for chunk in stream:
        yield bytes(chunk)  # type: ignore[call-overload]


@asynccontextmanager
async def _answering(action: str, key: str) -> AsyncIterator[None]:
    """Turn the store's failures into StorageUnavailable (a missing key stays
    FileNotFoundError, as with local files), logging the cause, which names no secret."""
    try:
        yield
    except BaseError as error:
        # The client's first line says what failed and how often it was tried; the rest is
        # a debug dump of its internals.
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        logger.warning("could not %s %s in the asset store: %s", action, key, reason)
        raise StorageUnavailable(
            "The asset store did not answer or refused the request; try again shortly."
        ) from error
