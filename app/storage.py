"""Asset bytes, content-addressed, in a local directory (the embedded default)."""

import asyncio
import os
import tempfile
import time
from pathlib import Path

# Prefix of a file being written; one left behind by a crash is removed with unreferenced files.
INCOMING_PREFIX = ".incoming-"


def content_key(content_hash: str, image_format: str) -> str:
    """The storage key of some content: its SHA-256, fanned out by its first two characters."""
    return f"{content_hash[:2]}/{content_hash}.{image_format}"


class LocalStorage:
    """Files under one directory; writing the same key twice is harmless (same bytes)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    async def put(self, key: str, data: bytes) -> None:
        """Store bytes under a key, atomically: readers see all of it or nothing."""
        await asyncio.to_thread(self._put, key, data)

    async def get(self, key: str) -> bytes:
        """The bytes stored under a key."""
        return await asyncio.to_thread((self.root / key).read_bytes)

    async def delete(self, key: str) -> None:
        """Remove the bytes under a key, if any."""
        await asyncio.to_thread((self.root / key).unlink, missing_ok=True)

    async def keys_older_than(self, seconds: float) -> list[str]:
        """Every key (and abandoned partial write) last modified more than `seconds` ago."""
        return await asyncio.to_thread(self._keys_older_than, time.time() - seconds)

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
