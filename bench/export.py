"""Benchmark the export pipeline against a naive baseline, measured in the same run.

One 4096x4096 photo-like PNG is exported to every preset (cover fit) as webp and as jpeg, by
`export_all` and by the naive way: decode, then for each preset resize the whole image with
Lanczos, crop the centre (geometry.fit_exact) and encode with the same encoder settings.

Beside them, a direct libvips run of the same targets (bench/export_vips.py: decode once, then
thumbnail_image with a centre crop and the same encoder settings). pyvips and its libvips wheel
(pyvips-binary) are not Darkroom dependencies: on first use the bench installs pinned releases
into a virtualenv of its own, bench/.vips-venv (not in git), as bench/openai_compat.py does for
LiteLLM, so the service, its tests and CI never load a second image library; `--no-libvips`
skips it.

Every run is a fresh child process, interleaved with the other variants, so its peak RSS
(VmHWM) is its own and includes the C allocations, which tracemalloc cannot see. Prints median
and best wall time, the speed-up in wall and in CPU time, peak RSS, the peak above the child's
idle RSS and the bytes written, then SSIM and PSNR of each output against the naive one.

    .venv/bin/python bench/export.py [--repeats 5] [--no-libvips]
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
from collections.abc import Sequence
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
VARIANTS = ("naive", "optimized", "libvips")
REPO_ROOT = Path(__file__).resolve().parent.parent
VIPS_VENV = REPO_ROOT / "bench" / ".vips-venv"
VIPS_REQUIREMENTS = ("pyvips==3.2.0", "pyvips-binary==8.18.7")
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


def encoder_settings(image_format: str) -> dict:
    """Exactly the settings the pipeline encodes with, so only the pipeline differs."""
    return {**ENCODER_SETTINGS[image_format], "quality": DEFAULT_QUALITY[image_format]}


def encode(image: Image.Image, image_format: str) -> bytes:
    """Encode with the pipeline's settings."""
    buffer = io.BytesIO()
    image.save(buffer, PILLOW_FORMATS[image_format], **encoder_settings(image_format))
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
    print(
        json.dumps(
            report | {"peak_mib": memory_mib("VmHWM"), "bytes": sum(map(len, files.values()))}
        )
    )


def memory_mib(field: str) -> float:
    """A memory figure of this process from /proc/self/status, in MiB. VmHWM is the peak RSS
    since exec, C allocations included; ru_maxrss would also count the parent's pages at fork."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"/proc/self/status has no {field}")


class VipsUnavailable(Exception):
    """pyvips could not be installed here; the message says why."""


def install_vips() -> Path:
    """The Python of the bench's own virtualenv with pyvips and libvips, installed on first use;
    raises VipsUnavailable when it cannot be."""
    python = VIPS_VENV / "bin" / "python"
    marker = VIPS_VENV / "installed.txt"
    wanted = " ".join(VIPS_REQUIREMENTS)
    if python.exists() and marker.exists() and marker.read_text() == wanted:
        return python
    print(f"  installing {wanted} into {VIPS_VENV} (once) ...", flush=True)
    for step in (
        [sys.executable, "-m", "venv", "--clear", str(VIPS_VENV)],
        [str(python), "-m", "pip", "install", "-q", *VIPS_REQUIREMENTS],
    ):
        completed = subprocess.run(step, capture_output=True, text=True)
        if completed.returncode != 0:
            output = (completed.stderr or completed.stdout).strip().splitlines()[-3:]
            raise VipsUnavailable(f"`{' '.join(step)}` failed: " + " / ".join(output))
    marker.write_text(wanted)
    return python


def child_command(variant: str, image_format: str, source: Path, outputs: Path) -> list[str]:
    """The command line of one measured run: this script as a child, or the libvips script run
    by the Python of the bench's libvips virtualenv."""
    if variant != "libvips":
        arguments = ["--child", variant, image_format, str(source), str(outputs)]
        return [sys.executable, __file__, *arguments]
    parameters = {"targets": dict(PRESETS), "settings": encoder_settings(image_format)}
    script = str(Path(__file__).with_name("export_vips.py"))
    python = str(VIPS_VENV / "bin" / "python")
    return [python, script, image_format, str(source), str(outputs), json.dumps(parameters)]


def measure_once(variant: str, image_format: str, source: Path, outputs: Path) -> dict:
    """One run of one variant in a fresh process."""
    completed = subprocess.run(
        child_command(variant, image_format, source, outputs),
        stdout=subprocess.PIPE,
        check=True,
        text=True,
    )
    return json.loads(completed.stdout)


def summary(runs: list[dict], naive_runs: list[dict]) -> dict[str, float]:
    """Median and best wall time, the median of the naive run's time over this one's within each
    round (the rounds interleave the variants, so a pair shared the machine's load), median CPU
    time (all threads), peak RSS, and the peak above the child's idle RSS (after imports and
    reading the source)."""
    pairs = zip(naive_runs, runs, strict=True)
    return {
        "paired": statistics.median(naive["seconds"] / run["seconds"] for naive, run in pairs),
        "median": statistics.median(run["seconds"] for run in runs),
        "best": min(run["seconds"] for run in runs),
        "cpu": statistics.median(run["cpu_seconds"] for run in runs),
        "peak_mib": max(run["peak_mib"] for run in runs),
        "work_mib": statistics.median(run["peak_mib"] - run["baseline_mib"] for run in runs),
        "bytes": runs[-1]["bytes"],
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


def quality_table(
    outputs: Path, variants: Sequence[str]
) -> dict[str, dict[str, dict[str, tuple[float, float]]]]:
    """SSIM and PSNR (luma) of each variant's output against the naive one, per variant, format
    and preset."""
    table: dict[str, dict[str, dict[str, tuple[float, float]]]] = {}
    for variant in variants:
        if variant == "naive":
            continue
        table[variant] = {image_format: {} for image_format in FORMATS}
        for image_format in FORMATS:
            for name in PRESETS:
                naive = luma((outputs / f"naive-{image_format}-{name}").read_bytes())
                other = luma((outputs / f"{variant}-{image_format}-{name}").read_bytes())
                table[variant][image_format][name] = ssim(naive, other), psnr(naive, other)
    return table


def print_timings(timings: dict[str, dict[str, dict[str, float]]], repeats: int) -> None:
    """Wall and CPU time, each variant's speed-up over the naive one (of the medians, and the
    median of each round's), memory and bytes."""
    print(f"\n{SIDE}x{SIDE} PNG to {len(PRESETS)} presets, cover fit; {repeats} runs each")
    print(
        f"{'format':<6} {'variant':<10} {'median s':>9} {'best s':>7} {'speed-up':>9} "
        f"{'paired':>7} {'CPU s':>6} {'CPU x':>6} {'peak RSS MiB':>13} {'above idle MiB':>15} "
        f"{'KiB out':>8}"
    )
    for image_format in FORMATS:
        naive = timings[image_format]["naive"]
        for variant, row in timings[image_format].items():
            print(
                f"{image_format:<6} {variant:<10} {row['median']:>9.2f} {row['best']:>7.2f} "
                f"{naive['median'] / row['median']:>8.2f}x {row['paired']:>6.2f}x "
                f"{row['cpu']:>6.2f} "
                f"{naive['cpu'] / row['cpu']:>5.2f}x {row['peak_mib']:>13.0f} "
                f"{row['work_mib']:>15.0f} {row['bytes'] / 1024:>8.0f}"
            )


def print_quality(quality: dict[str, dict[str, dict[str, tuple[float, float]]]]) -> None:
    """Per preset, SSIM and PSNR of every variant against the naive output, and the mean SSIM."""
    columns = [(variant, f) for variant in quality for f in FORMATS]
    print("\nAgainst the naive outputs, luma (PSNR inf: identical pixels)")
    print(f"{'':<19} {'':>10} " + " ".join(f"{f'{v} {f}':>17}" for v, f in columns))
    print(f"{'preset':<19} {'size':>10} " + " ".join(f"{'SSIM':>8} {'PSNR':>8}" for _ in columns))
    for name, (width, height) in PRESETS.items():
        cells = " ".join(
            f"{quality[v][f][name][0]:>8.4f} {quality[v][f][name][1]:>8.1f}" for v, f in columns
        )
        print(f"{name:<19} {f'{width}x{height}':>10} {cells}")
    means = " ".join(
        f"{statistics.mean(s for s, _ in quality[v][f].values()):>8.4f} {'':>8}" for v, f in columns
    )
    print(f"{'mean':<19} {'':>10} {means}")


def run_all(
    source: Path, workspace: Path, repeats: int, variants: Sequence[str]
) -> dict[str, dict[str, dict[str, float]]]:
    """Every variant and format `repeats` times, interleaved so that load from other processes
    falls on all of them alike."""
    runs: dict[tuple[str, str], list[dict]] = {
        (image_format, variant): [] for image_format in FORMATS for variant in variants
    }
    for repeat in range(repeats):
        for image_format, variant in runs:
            runs[image_format, variant].append(
                measure_once(variant, image_format, source, workspace)
            )
        print(f"  run {repeat + 1}/{repeats} done", flush=True)
    return {
        image_format: {
            variant: summary(runs[image_format, variant], runs[image_format, "naive"])
            for variant in variants
        }
        for image_format in FORMATS
    }


def measured_variants(with_libvips: bool) -> list[str]:
    """naive and optimized, and libvips when asked for and installable (else says why not)."""
    if not with_libvips:
        return ["naive", "optimized"]
    try:
        install_vips()
    except VipsUnavailable as exc:
        print(f"libvips not measured: {exc}", flush=True)
        return ["naive", "optimized"]
    return list(VARIANTS)


def main() -> None:
    """Run the benchmark, or one measured run when called as a child."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-libvips", action="store_true", help="skip the direct libvips run")
    parser.add_argument("--child", nargs=4, metavar=("VARIANT", "FORMAT", "SOURCE", "OUTPUTS"))
    arguments = parser.parse_args()
    if arguments.child:
        variant, image_format, source, outputs = arguments.child
        run_child(variant, image_format, Path(source), Path(outputs))
        return
    variants = measured_variants(not arguments.no_libvips)
    with tempfile.TemporaryDirectory(prefix="darkroom-bench-") as directory:
        workspace = Path(directory)
        source = workspace / "source.png"
        source.write_bytes(photo_like_png(SIDE))
        size_mib = source.stat().st_size / 2**20
        print(f"source: {SIDE}x{SIDE} PNG, {size_mib:.1f} MiB; {os.cpu_count()} CPUs", flush=True)
        load_before = os.getloadavg()[0]
        timings = run_all(source, workspace, arguments.repeats, variants)
        load_after = os.getloadavg()[0]
        print_timings(timings, arguments.repeats)
        print_quality(quality_table(workspace, variants))
        # Other processes on the machine slow the threaded variants more than the one-thread one.
        print(f"\n1-minute load average: {load_before:.2f} before, {load_after:.2f} after")
        if "libvips" in variants:
            print(f"libvips: {', '.join(VIPS_REQUIREMENTS)}, default threads ({os.cpu_count()})")


if __name__ == "__main__":
    main()
