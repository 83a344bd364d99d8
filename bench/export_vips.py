"""One measured libvips run for bench/export.py: the same source to the same targets, directly.

Run by bench/export.py with the Python of its own virtualenv (bench/.vips-venv, pyvips and the
pyvips-binary wheel), so it imports nothing but the standard library and pyvips. The source is
loaded once into memory and each target is made the way a libvips user would: thumbnail_image
with a centre crop (a box shrink, then Lanczos 3, on libvips's own threads), then saved with the
encoder settings the pipeline uses, metadata stripped. Prints wall and CPU seconds and the
peak RSS as JSON on stdout.

    bench/.vips-venv/bin/python bench/export_vips.py FORMAT SOURCE OUTPUTS SETTINGS_JSON
"""

import json
import sys
import time
from pathlib import Path

import pyvips


def save(image: pyvips.Image, image_format: str, settings: dict) -> bytes:
    """The pipeline's encoder settings in libvips's words."""
    if image_format == "webp":
        return image.webpsave_buffer(Q=settings["quality"], effort=settings["method"], keep="none")
    return image.jpegsave_buffer(
        Q=settings["quality"],
        optimize_coding=settings["optimize"],
        interlace=settings["progressive"],
        keep="none",
    )


def export(data: bytes, image_format: str, targets: dict, settings: dict) -> dict[str, bytes]:
    """Decode once, then a centre-cropped thumbnail and an encode per target."""
    source = pyvips.Image.new_from_buffer(data, "").copy_memory()
    return {
        name: save(
            source.thumbnail_image(width, height=height, crop="centre", size="both"),
            image_format,
            settings,
        )
        for name, (width, height) in targets.items()
    }


def memory_mib(field: str) -> float:
    """A memory figure of this process from /proc/self/status, in MiB; VmHWM (the peak RSS
    since exec) counts libvips's own allocations."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"/proc/self/status has no {field}")


def main() -> None:
    image_format, source, outputs, settings_json = sys.argv[1:5]
    parameters = json.loads(settings_json)
    data = Path(source).read_bytes()
    baseline = memory_mib("VmRSS")
    started, cpu_started = time.perf_counter(), time.process_time()
    files = export(data, image_format, parameters["targets"], parameters["settings"])
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
    for name, content in files.items():
        (Path(outputs) / f"libvips-{image_format}-{name}").write_bytes(content)
    report = {"seconds": seconds, "cpu_seconds": cpu_seconds, "baseline_mib": baseline}
    print(
        json.dumps(
            report | {"peak_mib": memory_mib("VmHWM"), "bytes": sum(map(len, files.values()))}
        )
    )


if __name__ == "__main__":
    main()
