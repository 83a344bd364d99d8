"""Asset bytes, content-addressed, in a local directory (the embedded default)."""

import asyncio
import os
import tempfile
from pathlib import Path


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

    def _put(self, key: str, data: bytes) -> None:
        path = self.root / key
        if path.exists():
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".incoming-")
        try:
            with os.fdopen(handle, "wb") as file:
                file.write(data)
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
