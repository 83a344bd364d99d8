"""Benchmark: POST /v1/generate on the embedded default against the bare work it wraps.

For each output format, the median wall time of a `Prefer: wait` request (local/draft, 16:9,
n=1) through the whole app (HTTP, database, in-process runner, storage) next to the median of
rendering and encoding the same image directly; the ratio is what the service adds. Also the
PNG encode time at the level outputs use (3) against Pillow's default (6).
Run: .venv/bin/python bench/generate.py
"""

import asyncio
import io
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from app.cli import migrate
from app.config import Settings
from app.imaging.codecs import encode
from app.main import create_app
from app.providers.draft_renderer import render_draft
from app.services.keys import create_key

PROMPT = "red sunset over the ocean"
WIDTH, HEIGHT = 1360, 765
RUNS = 7


def median_ms(run: Callable[[int], object]) -> float:
    """Median wall time of `run(i)` over RUNS calls, in milliseconds."""
    times = []
    for index in range(RUNS):
        started = time.perf_counter()
        run(index)
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def direct_ms(image_format: str) -> float:
    """Render and encode one output without the service."""
    return median_ms(lambda seed: encode(render_draft(PROMPT, seed, WIDTH, HEIGHT), image_format))


async def api_ms(client: httpx.AsyncClient, headers: dict[str, str], image_format: str) -> float:
    """One generate request that waits for its result, end to end."""
    times = []
    for seed in range(RUNS):
        body = {
            "prompt": PROMPT,
            "aspect_ratio": "16:9",
            "seed": seed,
            "output_format": image_format,
        }
        started = time.perf_counter()
        response = await client.post("/v1/generate", json=body, headers=headers)
        times.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200 and response.json()["status"] == "succeeded"
    return statistics.median(times)


def png_level_ms(level: int) -> float:
    """Encode one draft as PNG at a zlib level."""
    image = render_draft(PROMPT, 1, WIDTH, HEIGHT)
    return median_ms(lambda _: image.save(io.BytesIO(), "PNG", compress_level=level))


async def main() -> None:
    """Print the table."""
    settings = Settings(data_dir=Path(tempfile.mkdtemp()))
    await asyncio.to_thread(migrate, settings)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        async with app.state.sessionmaker() as session:
            key = await create_key(session, "bench")
            await session.commit()
        headers = {"Authorization": f"Bearer {key}", "Prefer": "wait=30"}
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            print(f"generate {WIDTH}x{HEIGHT}, n=1, median of {RUNS}")
            print(f"{'format':<7}{'direct ms':>11}{'API ms':>9}{'ratio':>8}")
            for image_format in ("png", "jpeg", "webp"):
                direct = direct_ms(image_format)
                through_api = await api_ms(client, headers, image_format)
                ratio = through_api / direct
                print(f"{image_format:<7}{direct:>11.0f}{through_api:>9.0f}{ratio:>7.2f}x")
    level_3, level_6 = png_level_ms(3), png_level_ms(6)
    print(
        f"png encode: level 3 {level_3:.0f} ms, level 6 {level_6:.0f} ms ({level_6 / level_3:.1f}x)"
    )


if __name__ == "__main__":
    asyncio.run(main())
