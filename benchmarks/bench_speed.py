"""Wall time of gradlint against baselines measured in the same run (median of N runs each).

1. A file with no model: `gradlint --skip-non-models FILE` against `python -c pass`, and a check
   that torch was not imported.
2. Each sample: `gradlint SAMPLE` (the default run) against a baseline process that imports torch,
   builds the same model and runs one forward+backward on its example batch.

    python benchmarks/bench_speed.py [--runs 5] [samples/*.py]

Prints a Markdown table for BENCHMARKS.md. Ratios, not absolute times, are the result: they hold
across machines far better than seconds do.
"""

from __future__ import annotations

import argparse
import glob
import os
import statistics
import subprocess
import sys
import time

BASELINE = """
import importlib.util, sys, torch
spec = importlib.util.spec_from_file_location("m", sys.argv[1])
m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)
torch.manual_seed(0)
model = m.build_model()
inputs = m.example_inputs() if hasattr(m, "example_inputs") else None
inputs = (inputs,) if isinstance(inputs, torch.Tensor) else inputs
out = model(*inputs)
out = out if isinstance(out, torch.Tensor) else (out["logits"] if isinstance(out, dict) else out[0])
out.float().pow(2).mean().backward()
"""

NO_TORCH_CHECK = (
    "import sys\nfrom gradlint.cli import main\n"
    "try:\n    main([sys.argv[1], '--skip-non-models', '-q'])\nexcept SystemExit:\n    pass\n"
    "assert 'torch' not in sys.modules, 'torch was imported'\n"
)


def median_seconds(command: list[str], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def has_example_inputs(path: str) -> bool:
    with open(path) as handle:
        return "def example_inputs" in handle.read()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("samples", nargs="*")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--no-model-file", default="samples/data_utils.py")
    args = parser.parse_args()
    samples = args.samples or sorted(p for p in glob.glob("samples/*.py") if has_example_inputs(p))
    gradlint = [sys.executable, "-m", "gradlint"]

    subprocess.run([sys.executable, "-c", NO_TORCH_CHECK, args.no_model_file], check=True)
    empty = median_seconds([sys.executable, "-c", "pass"], args.runs)
    skip = median_seconds([*gradlint, "--skip-non-models", "-q", args.no_model_file], args.runs)
    print(f"python: {sys.version.split()[0]}, cpus: {os.cpu_count()}, runs: {args.runs} (median)\n")
    print("| file without a model | `python -c pass` | gradlint | ratio | torch imported |")
    print("|---|---|---|---|---|")
    print(f"| {args.no_model_file} | {empty:.3f} s | {skip:.3f} s | {skip / empty:.2f}x | no |\n")

    print("| sample | baseline: import torch + build + fwd/bwd | gradlint (default run) | ratio |")
    print("|---|---|---|---|")
    ratios = []
    for sample in samples:
        base = median_seconds([sys.executable, "-c", BASELINE, sample], args.runs)
        lint = median_seconds([*gradlint, "-q", "--exit-zero", sample], args.runs)
        ratios.append(lint / base)
        print(f"| {os.path.basename(sample)} | {base:.3f} s | {lint:.3f} s | {lint / base:.2f}x |")
    if ratios:
        print(f"\nmedian ratio {statistics.median(ratios):.2f}x, max {max(ratios):.2f}x over {len(ratios)} samples")


if __name__ == "__main__":
    main()
