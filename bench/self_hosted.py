"""Benchmark the self-hosted models' pipeline code on the tiny Stable Diffusion model the tests
build (random weights, 64x64 images), on this machine's CPU: how long it takes to load, to make
one image, and to make a job's `n` images as one batch against one call per image, measured in
the same run. The figures are of the pipeline code and torch's CPU kernels, not of a real model:
a real one is hundreds of times larger and runs on a GPU.

    .venv/bin/python bench/self_hosted.py [--steps 30] [--n 4] [--repeats 5] [--threads 0]
"""

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.providers.self_hosted import Denoise, PipelineOptions
from app.providers.self_hosted_pipeline import load_pipeline
from tests.self_hosted.tiny import NATIVE_SIDE, save_tiny_pipeline

SIZE = (NATIVE_SIDE, NATIVE_SIDE)
PROMPT = "a ceramic mug on a walnut desk, morning light"


def timed(work) -> float:
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--n", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=0, help="torch's threads; 0: one a core")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        model = save_tiny_pipeline(Path(directory) / "tiny")
        cpu = PipelineOptions(device="cpu", precision="float32", cpu_threads=options.threads)
        loads = [timed(lambda: load_pipeline(str(model), cpu)) for _ in range(3)]
        pipeline = load_pipeline(str(model), cpu)

    def make(seeds: list[int]) -> None:
        denoise = Denoise(PROMPT, None, seeds, options.steps, 7.5, lambda *_: None)
        pipeline.text_to_image(denoise, SIZE)

    make([0])  # the first call sets torch up
    seeds = list(range(options.n))
    one = [timed(lambda: make([1])) for _ in range(options.repeats)]
    batch = [timed(lambda: make(seeds)) for _ in range(options.repeats)]
    apart = [timed(lambda: [make([seed]) for seed in seeds]) for _ in range(options.repeats)]
    memory = pipeline.facts.memory_bytes / 2**20
    print(f"tiny model: {memory:.1f} MiB of float32 weights, {SIZE[0]}x{SIZE[1]} images")
    print(f"load: median {statistics.median(loads) * 1000:.0f} ms over {len(loads)}")
    print(f"1 image, {options.steps} steps: median {statistics.median(one) * 1000:.0f} ms")
    print(
        f"{options.n} images as one batch: median {statistics.median(batch) * 1000:.0f} ms; "
        f"one call each: {statistics.median(apart) * 1000:.0f} ms; "
        f"ratio {statistics.median(batch) / statistics.median(apart):.2f}"
    )


if __name__ == "__main__":
    main()
