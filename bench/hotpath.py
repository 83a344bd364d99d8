"""Benchmark the steps on a job's path that this checkout made cheaper, each beside the way it was
done before, measured in the same run:

- a one-statement bookkeeping write (a claim, a renewal, a final status) on Postgres: in a
  transaction on the durable engine, against one autocommit statement through an engine that
  does not wait for the disk (`create_engine(..., durable=False)`, synchronous_commit off);
- a commit on the embedded SQLite in WAL mode: synchronous=FULL against NORMAL, Darkroom's;
- checking a vendor's 1024x1024 PNG before it is stored as sent: the full decode
  (`decode_checked`) against the check without pixels that `decode_vendor_image` makes now
  (`open_checked`), for a flat image and a photo-like one;
- inflating that photo PNG's rows: zlib against ISA-L (`isal`), which the check uses.

    .venv/bin/python bench/hotpath.py [--writes 300] [--checks 30]
"""

import argparse
import sqlite3
import statistics
import time
import zlib
from collections.abc import Awaitable, Callable
from pathlib import Path

from isal import isal_zlib
from sqlalchemy import text
from vendor import fresh_database, postgres_url, print_table, render_image, run_bench

from app.db import create_engine, create_reader, create_sessionmaker
from app.imaging.codecs import decode_checked, open_checked

MAX_PIXELS = 50_000_000


def median_ms(run: Callable[[], object], times: int) -> float:
    """The median milliseconds of `times` calls."""
    samples = []
    for _ in range(times):
        started = time.perf_counter()
        run()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


async def median_ms_async(run: Callable[[], Awaitable[object]], times: int) -> float:
    """The median milliseconds of `times` awaited calls."""
    samples = []
    for _ in range(times):
        started = time.perf_counter()
        await run()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


async def postgres_writes(times: int) -> tuple[float, float]:
    """(durable transaction, bookkeeping autocommit) milliseconds of one UPDATE."""
    async with fresh_database("hotpath") as database:
        url = postgres_url(database, "postgresql+asyncpg")
        durable, bookkeeping = create_engine(url), create_engine(url, durable=False)
        try:
            async with durable.begin() as connection:
                await connection.execute(text("CREATE TABLE counter (id int PRIMARY KEY, n int)"))
                await connection.execute(text("INSERT INTO counter VALUES (1, 0)"))
            update = text("UPDATE counter SET n = n + 1 WHERE id = 1")
            sessions, bookkeeper = create_sessionmaker(durable), create_reader(bookkeeping)

            async def in_transaction() -> None:
                async with sessions() as session:
                    await session.execute(update)
                    await session.commit()

            async def as_bookkeeping() -> None:
                async with bookkeeper() as session:
                    await session.execute(update)

            return (
                await median_ms_async(in_transaction, times),
                await median_ms_async(as_bookkeeping, times),
            )
        finally:
            await durable.dispose()
            await bookkeeping.dispose()


def sqlite_commit_ms(directory: Path, synchronous: str, times: int) -> float:
    """Milliseconds of one UPDATE and commit on a WAL-mode SQLite file."""
    connection = sqlite3.connect(directory / f"{synchronous}.db", isolation_level=None)
    try:
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute(f"PRAGMA synchronous={synchronous}")
        connection.execute("CREATE TABLE counter (id int PRIMARY KEY, n int)")
        connection.execute("INSERT INTO counter VALUES (1, 0)")

        def commit() -> None:
            connection.execute("BEGIN")
            connection.execute("UPDATE counter SET n = n + 1 WHERE id = 1")
            connection.execute("COMMIT")

        return median_ms(commit, times)
    finally:
        connection.close()


def image_rows(png: bytes) -> bytes:
    """The compressed rows of a PNG: its IDAT chunks joined."""
    rows, position = [], 8
    while position < len(png):
        length = int.from_bytes(png[position : position + 4], "big")
        if png[position + 4 : position + 8] == b"IDAT":
            rows.append(png[position + 8 : position + 8 + length])
        position += 12 + length
    return b"".join(rows)


def inflate(module: object, compressed: bytes) -> None:
    """Inflate a stream a megabyte at a time, as the PNG check does."""
    inflater = module.decompressobj()  # type: ignore[attr-defined]
    while inflater.decompress(compressed, 1 << 20):
        compressed = inflater.unconsumed_tail


async def measure(sizes: argparse.Namespace, directory: Path) -> None:
    """Measure every pair and print the table."""
    pairs = []
    durable, bookkeeping = await postgres_writes(sizes.writes)
    pairs.append(("Postgres write: transaction, durable", durable))
    pairs.append(("Postgres write: autocommit, no disk wait", bookkeeping))
    pairs.append(
        ("SQLite WAL commit: synchronous=FULL", sqlite_commit_ms(directory, "FULL", sizes.writes))
    )
    pairs.append(
        (
            "SQLite WAL commit: synchronous=NORMAL",
            sqlite_commit_ms(directory, "NORMAL", sizes.writes),
        )
    )
    for kind in ("flat", "photo"):
        png = render_image(kind, 1024, 1024, "png")
        pairs.append(
            (
                f"vendor PNG, {kind}: full decode",
                median_ms(lambda png=png: decode_checked(png, MAX_PIXELS), sizes.checks),
            )
        )
        pairs.append(
            (
                f"vendor PNG, {kind}: checked, decode deferred",
                median_ms(lambda png=png: open_checked(png, MAX_PIXELS), sizes.checks),
            )
        )
    compressed = image_rows(render_image("photo", 1024, 1024, "png"))
    pairs.append(
        ("photo PNG rows: zlib inflate", median_ms(lambda: inflate(zlib, compressed), sizes.checks))
    )
    pairs.append(
        (
            "photo PNG rows: ISA-L inflate",
            median_ms(lambda: inflate(isal_zlib, compressed), sizes.checks),
        )
    )
    rows = []
    for (before_name, before), (after_name, after) in zip(pairs[::2], pairs[1::2], strict=True):
        rows.append((before_name, f"{before:.3f}", "1.00x"))
        rows.append((after_name, f"{after:.3f}", f"{before / after:.2f}x"))
    print("\nMedian milliseconds; speed-up against the first row of each pair (the way before).")
    print_table(("step", "median ms", "speed-up"), rows)


def main() -> None:
    """Parse the options and run."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writes", type=int, default=300, help="writes per variant")
    parser.add_argument("--checks", type=int, default=30, help="image checks per variant")
    run_bench("Steps on a job's path, before and after", measure, parser.parse_args())


if __name__ == "__main__":
    main()
