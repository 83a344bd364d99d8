"""Benchmark the export pipeline against a naive baseline, measured in the same run.

One 4096x4096 photo-like PNG is exported to every preset (cover fit) as webp and as jpeg, by
`export_all` and by the naive way: decode, then for each preset resize the whole image with
Lanczos, crop the centre (geometry.fit_exact) and encode with the same encoder settings.

Every run is a fresh child process, interleaved with the other variants, so its peak RSS
(VmHWM) is its own and includes Pillow's C allocations, which tracemalloc cannot see. Prints
median and best wall time, the speed-up, CPU time, peak RSS and the peak above the child's idle
RSS, then SSIM and PSNR of each optimized output against the naive one.

    .venv/bin/python bench/export.py [--repeats 5]
"""

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from app.imaging.export import (
    DEFAULT_QUALITY,
    ENCODER_SETTINGS,
    PILLOW_FORMATS,
    PRESETS,
    ExportOptions,
    export_all,
    resolve_target,
)
from app.imaging.geometry import fit_exact

SIDE = 4096
FORMATS = ("webp", "jpeg")
VARIANTS = ("naive", "optimized")
SSIM_WINDOW = 8
SSIM_C1 = (0.01 * 255) ** 2
SSIM_C2 = (0.03 * 255) ** 2


def photo_like_png(side: int) -> bytes:
    """Smooth gradients, soft-edged shapes, fine texture and sensor-like noise, as a PNG."""
    rng = np.random.default_rng(2024)
    x = np.linspace(0, 1, side, dtype=np.float32)[None, :, None]
    y = np.linspace(0, 1, side, dtype=np.float32)[:, None, None]
    sky = np.concatenate(np.broadcast_arrays(90 + 120 * y, 140 + 80 * y, 230 - 60 * y), axis=2)
    light = 25 * np.sin(3.1 * x + 1.3) * np.cos(2.3 * y + 0.4)
    image = Image.fromarray((sky + light).clip(0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for _ in range(60):
        left, top = rng.integers(0, side, 2)
        width, height = rng.integers(side // 40, side // 5, 2)
        colour = tuple(int(c) for c in rng.integers(20, 235, 3))
        shape = draw.ellipse if rng.random() < 0.5 else draw.rectangle
        shape((left, top, left + width, top + height), fill=colour)
    for _ in range(3000):
        start = rng.integers(0, side, 2)
        end = start + rng.integers(-60, 60, 2)
        shade = int(rng.integers(30, 120))
        draw.line((*start.tolist(), *end.tolist()), fill=(shade, shade + 40, shade // 2), width=2)
    # A lens never renders a perfectly hard edge.
    image = image.filter(ImageFilter.GaussianBlur(1.2))
    grain = 3 * rng.standard_normal((side, side, 3), dtype=np.float32)
    pixels = (np.asarray(image, dtype=np.float32) + grain).clip(0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    # The fastest zlib level: the file decodes at the same speed and the run stays short.
    Image.fromarray(pixels).save(buffer, "PNG", compress_level=1)
    return buffer.getvalue()


def encode(image: Image.Image, image_format: str) -> bytes:
    """Encode with exactly the settings the pipeline uses, so only the pipeline differs."""
    buffer = io.BytesIO()
    settings = {**ENCODER_SETTINGS[image_format], "quality": DEFAULT_QUALITY[image_format]}
    image.save(buffer, PILLOW_FORMATS[image_format], **settings)
    return buffer.getvalue()


def naive_export(data: bytes, image_format: str) -> dict[str, bytes]:
    """The baseline: decode, then resize the whole image for every preset, crop, encode."""
    image = Image.open(io.BytesIO(data))
    image.load()
    return {
        name: encode(fit_exact(image, width, height), image_format)
        for name, (width, height) in PRESETS.items()
    }


def optimized_export(data: bytes, image_format: str) -> dict[str, bytes]:
    """The pipeline: export_all to every preset with the cover fit."""
    targets = [resolve_target(name) for name in PRESETS]
    results = export_all(data, targets, ExportOptions(fit="cover", format=image_format))
    return {result.target.name: result.data for result in results}


EXPORTERS = {"naive": naive_export, "optimized": optimized_export}


def run_child(variant: str, image_format: str, source: Path, outputs: Path) -> None:
    """Export once, keep the files, and report wall time and memory as JSON on stdout."""
    data = source.read_bytes()
    baseline = memory_mib("VmRSS")
    started, cpu_started = time.perf_counter(), time.process_time()
    files = EXPORTERS[variant](data, image_format)
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
    for name, content in files.items():
        (outputs / f"{variant}-{image_format}-{name}").write_bytes(content)
    report = {"seconds": seconds, "cpu_seconds": cpu_seconds, "baseline_mib": baseline}
    print(json.dumps(report | {"peak_mib": memory_mib("VmHWM")}))


def memory_mib(field: str) -> float:
    """A memory figure of this process from /proc/self/status, in MiB. VmHWM is the peak RSS
    since exec, C allocations included; ru_maxrss would also count the parent's pages at fork."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"/proc/self/status has no {field}")


def measure_once(variant: str, image_format: str, source: Path, outputs: Path) -> dict:
    """One run of one variant in a fresh process."""
    arguments = ["--child", variant, image_format, str(source), str(outputs)]
    completed = subprocess.run(
        [sys.executable, __file__, *arguments], stdout=subprocess.PIPE, check=True, text=True
    )
    return json.loads(completed.stdout)


def summary(runs: list[dict]) -> dict[str, float]:
    """Median and best wall time, median CPU time (all threads), peak RSS, and the peak above
    the child's idle RSS (after imports and reading the source)."""
    return {
        "median": statistics.median(run["seconds"] for run in runs),
        "best": min(run["seconds"] for run in runs),
        "cpu": statistics.median(run["cpu_seconds"] for run in runs),
        "peak_mib": max(run["peak_mib"] for run in runs),
        "work_mib": statistics.median(run["peak_mib"] - run["baseline_mib"] for run in runs),
    }


def luma(data: bytes) -> np.ndarray:
    """The decoded image's luma (ITU-R 601) as floats."""
    return np.asarray(Image.open(io.BytesIO(data)).convert("L"), dtype=np.float64)


def window_means(values: np.ndarray) -> np.ndarray:
    """The mean of every SSIM_WINDOW x SSIM_WINDOW window, from a summed-area table."""
    table = np.pad(values.cumsum(axis=0).cumsum(axis=1), ((1, 0), (1, 0)))
    size = SSIM_WINDOW
    sums = table[size:, size:] - table[:-size, size:] - table[size:, :-size] + table[:-size, :-size]
    return sums / (size * size)


def ssim(first: np.ndarray, second: np.ndarray) -> float:
    """Mean SSIM over sliding 8x8 windows (Wang et al. 2004, uniform weights)."""
    mean_first, mean_second = window_means(first), window_means(second)
    variance_first = window_means(first * first) - mean_first**2
    variance_second = window_means(second * second) - mean_second**2
    covariance = window_means(first * second) - mean_first * mean_second
    numerator = (2 * mean_first * mean_second + SSIM_C1) * (2 * covariance + SSIM_C2)
    denominator = (mean_first**2 + mean_second**2 + SSIM_C1) * (
        variance_first + variance_second + SSIM_C2
    )
    return float((numerator / denominator).mean())


def psnr(first: np.ndarray, second: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB; infinite for identical images."""
    mean_squared_error = float(((first - second) ** 2).mean())
    return float("inf") if mean_squared_error == 0 else 10 * np.log10(255**2 / mean_squared_error)


def quality_table(outputs: Path) -> dict[str, dict[str, tuple[float, float]]]:
    """SSIM and PSNR (luma) of the optimized output against the naive one, per format and preset."""
    table: dict[str, dict[str, tuple[float, float]]] = {}
    for image_format in FORMATS:
        table[image_format] = {}
        for name in PRESETS:
            naive = luma((outputs / f"naive-{image_format}-{name}").read_bytes())
            optimized = luma((outputs / f"optimized-{image_format}-{name}").read_bytes())
            table[image_format][name] = ssim(naive, optimized), psnr(naive, optimized)
    return table


def print_report(
    timings: dict[str, dict[str, dict[str, float]]], quality: dict, repeats: int
) -> None:
    """The timing and memory table, then the quality table per preset."""
    print(f"\n{SIDE}x{SIDE} PNG to {len(PRESETS)} presets, cover fit; {repeats} runs each")
    print(
        f"{'format':<6} {'variant':<10} {'median s':>9} {'best s':>7} {'speed-up':>9} "
        f"{'CPU s':>6} {'peak RSS MiB':>13} {'above idle MiB':>15}"
    )
    for image_format in FORMATS:
        naive = timings[image_format]["naive"]
        for variant in VARIANTS:
            row = timings[image_format][variant]
            speed_up = naive["median"] / row["median"]
            print(
                f"{image_format:<6} {variant:<10} {row['median']:>9.2f} {row['best']:>7.2f} "
                f"{speed_up:>8.2f}x {row['cpu']:>6.2f} {row['peak_mib']:>13.0f} "
                f"{row['work_mib']:>15.0f}"
            )
    print("\nOptimized against naive, luma (PSNR inf: identical pixels)")
    header = " ".join(f"{f + ' SSIM':>10} {f + ' PSNR':>10}" for f in FORMATS)
    print(f"{'preset':<19} {'size':>10} {header}")
    for name, (width, height) in PRESETS.items():
        cells = " ".join(
            f"{quality[f][name][0]:>10.4f} {quality[f][name][1]:>10.1f}" for f in FORMATS
        )
        print(f"{name:<19} {f'{width}x{height}':>10} {cells}")
    means = " ".join(
        f"{statistics.mean(s for s, _ in quality[f].values()):>10.4f} {'':>10}" for f in FORMATS
    )
    print(f"{'mean':<19} {'':>10} {means}")


def run_all(source: Path, workspace: Path, repeats: int) -> dict[str, dict[str, dict[str, float]]]:
    """Every variant and format `repeats` times, interleaved so that load from other processes
    falls on all of them alike."""
    runs: dict[tuple[str, str], list[dict]] = {
        (image_format, variant): [] for image_format in FORMATS for variant in VARIANTS
    }
    for repeat in range(repeats):
        for image_format, variant in runs:
            runs[image_format, variant].append(
                measure_once(variant, image_format, source, workspace)
            )
        print(f"  run {repeat + 1}/{repeats} done", flush=True)
    return {
        image_format: {variant: summary(runs[image_format, variant]) for variant in VARIANTS}
        for image_format in FORMATS
    }


def main() -> None:
    """Run the benchmark, or one measured run when called as a child."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--child", nargs=4, metavar=("VARIANT", "FORMAT", "SOURCE", "OUTPUTS"))
    arguments = parser.parse_args()
    if arguments.child:
        variant, image_format, source, outputs = arguments.child
        run_child(variant, image_format, Path(source), Path(outputs))
        return
    with tempfile.TemporaryDirectory(prefix="darkroom-bench-") as directory:
        workspace = Path(directory)
        source = workspace / "source.png"
        source.write_bytes(photo_like_png(SIDE))
        size_mib = source.stat().st_size / 2**20
        print(f"source: {SIDE}x{SIDE} PNG, {size_mib:.1f} MiB; {os.cpu_count()} CPUs", flush=True)
        load_before = os.getloadavg()[0]
        timings = run_all(source, workspace, arguments.repeats)
        load_after = os.getloadavg()[0]
        print_report(timings, quality_table(workspace), arguments.repeats)
        # Other processes on the machine slow the two-thread variant more than the one-thread one.
        print(f"\n1-minute load average: {load_before:.2f} before, {load_after:.2f} after")


if __name__ == "__main__":
    main()
