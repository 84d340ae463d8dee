"""Wall time and peak memory of gradlint against baselines measured in the same run (median of N runs each).

1. A file with no model: `gradlint --skip-non-models FILE` against `python -c pass`, and a check
   that torch was not imported.
2. Each model file (samples/*.py by default, or benchmark cases such as benchmarks/cases/*.py):
   `gradlint FILE` (the default run) against a baseline process that imports torch, builds the
   same model and runs one forward+backward on its example batch. Each run's wall time and
   peak RSS are measured together, so the time and memory tables describe the same runs.

    python benchmarks/bench_speed.py [--runs 5] [samples/*.py | benchmarks/cases/*.py]

Prints Markdown tables for BENCHMARKS.md. Ratios, not absolute times, are the result: they hold
across machines far better than seconds do. Peak RSS is far less noisy than time, but it
depends on the torch build and allocator, so it too is reported as a ratio to the baseline.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import statistics
import subprocess
import sys
from dataclasses import dataclass

BASELINE = """
import importlib.util, sys, torch
spec = importlib.util.spec_from_file_location("m", sys.argv[1])
m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)
torch.manual_seed(0)
model = m.build_model()
inputs = m.example_inputs()
# example_inputs() gives forward's positional arguments (one tensor or a tuple of them), or an
# HF-style batch (a dict or BatchEncoding) of keyword arguments.
if isinstance(inputs, torch.Tensor):
    out = model(inputs)
elif hasattr(inputs, "keys"):
    out = model(**inputs)
else:
    out = model(*inputs)
# The tensor to backpropagate from: the output itself, the logits of an HF ModelOutput or dict
# (else its first float tensor), or the first tensor of a tuple.
if hasattr(out, "keys"):
    values = dict(out.items())
    out = values["logits"] if "logits" in values else next(
        v for v in values.values() if isinstance(v, torch.Tensor) and v.is_floating_point())
elif not isinstance(out, torch.Tensor):
    out = next(v for v in out if isinstance(v, torch.Tensor))
out.float().pow(2).mean().backward()
"""

NO_TORCH_CHECK = (
    "import sys\nfrom gradlint.cli import main\n"
    "try:\n    main([sys.argv[1], '--skip-non-models', '-q'])\nexcept SystemExit:\n    pass\n"
    "assert 'torch' not in sys.modules, 'torch was imported'\n"
)

# Runs the command given as its arguments and reports the child's wall time and peak RSS as JSON.
# It is a separate process because RUSAGE_CHILDREN is the maximum over all children a process
# has waited for: a fresh intermediate per run makes each number one run's peak. The time is
# taken around the child alone, so it means what a direct subprocess.run timing means.
# gradlint lints in worker processes forked by a fork server that outlives the gradlint process
# by a moment; as a child subreaper (Linux) this process inherits and reaps the server, whose
# rusage holds its workers', so the peak is that of the largest process gradlint started.
MEASURE = """
import ctypes, json, os, resource, subprocess, sys, time
ctypes.CDLL(None).prctl(36, 1)  # PR_SET_CHILD_SUBREAPER
start = time.perf_counter()
child = subprocess.run(sys.argv[1:], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
seconds = time.perf_counter() - start
if child.returncode:  # both streams are kept: the reason for a failure may be on either
    sys.stderr.buffer.write(child.stdout[-4000:])
while True:  # the orphaned fork server, once it has seen gradlint exit
    try:
        os.wait()
    except ChildProcessError:
        break
peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(json.dumps({"seconds": seconds, "maxrss": peak, "returncode": child.returncode}))
"""

# ru_maxrss is in kilobytes on Linux and in bytes on macOS.
MAXRSS_BYTES = 1 if sys.platform == "darwin" else 1024
MB = 2**20


@dataclass
class Measurement:
    """Medians over the runs of one command."""

    seconds: float
    peak_bytes: float


def run_once(command: list[str]) -> tuple[float, int]:
    """(wall seconds, peak RSS in bytes) of one run of `command` in a fresh process.

    Raises if the command fails: a crashed run is fast and small, and would flatter gradlint.
    """
    result = subprocess.run([sys.executable, "-c", MEASURE, *command], capture_output=True, text=True, check=True)
    report = json.loads(result.stdout)
    if report["returncode"] != 0:
        raise RuntimeError(f"{' '.join(command)} exited {report['returncode']}:\n{result.stderr}")
    return report["seconds"], report["maxrss"] * MAXRSS_BYTES


def measure(command: list[str], runs: int) -> Measurement:
    """Median wall time and median peak RSS of `runs` runs of `command`."""
    results = [run_once(command) for _ in range(runs)]
    return Measurement(statistics.median(s for s, _ in results), statistics.median(p for _, p in results))


def has_example_inputs(path: str) -> bool:
    with open(path) as handle:
        return "def example_inputs" in handle.read()


def print_no_model_table(path: str, runs: int, gradlint: list[str]) -> None:
    """Time of gradlint on a file without a model against a bare interpreter; torch must stay unimported."""
    subprocess.run([sys.executable, "-c", NO_TORCH_CHECK, path], check=True)
    empty = measure([sys.executable, "-c", "pass"], runs).seconds
    skip = measure([*gradlint, "--skip-non-models", "-q", path], runs).seconds
    print("| file without a model | `python -c pass` | gradlint | ratio | torch imported |")
    print("|---|---|---|---|---|")
    print(f"| {path} | {empty:.3f} s | {skip:.3f} s | {skip / empty:.2f}x | no |\n")


def print_table(header: list[str], rows: list[list[str]]) -> None:
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(row) + " |")


def summary(ratios: list[float], what: str) -> str:
    return f"median {what} ratio {statistics.median(ratios):.2f}x, max {max(ratios):.2f}x over {len(ratios)} samples"


def print_model_tables(results: dict[str, tuple[Measurement, Measurement]]) -> None:
    """The time table, then the peak-memory table, each with its median and max ratio."""
    names = {path: os.path.basename(path) for path in results}
    print_table(["sample", "baseline: import torch + build + fwd/bwd", "gradlint (default run)", "ratio"],
                [[names[p], f"{b.seconds:.3f} s", f"{g.seconds:.3f} s", f"{g.seconds / b.seconds:.2f}x"]
                 for p, (b, g) in results.items()])
    print(f"\n{summary([g.seconds / b.seconds for b, g in results.values()], 'time')}\n")
    print_table(["sample", "baseline peak RSS", "gradlint peak RSS", "ratio"],
                [[names[p], f"{b.peak_bytes / MB:.0f} MB", f"{g.peak_bytes / MB:.0f} MB",
                  f"{g.peak_bytes / b.peak_bytes:.2f}x"] for p, (b, g) in results.items()])
    print(f"\n{summary([g.peak_bytes / b.peak_bytes for b, g in results.values()], 'peak memory')}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("samples", nargs="*", help="model files with build_model() and example_inputs()")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--no-model-file", default="samples/data_utils.py")
    args = parser.parse_args()
    samples = args.samples or sorted(p for p in glob.glob("samples/*.py") if has_example_inputs(p))
    # The baseline runs the model on its own example batch; without one there is nothing to compare.
    missing = [p for p in samples if not has_example_inputs(p)]
    if missing:
        parser.error(f"no example_inputs() in: {', '.join(missing)}")
    gradlint = [sys.executable, "-m", "gradlint"]
    # Installed packages run from cached bytecode; a PYTHONDONTWRITEBYTECODE environment would make
    # every gradlint run compile its sources again (~50 ms) while `python -c pass` compiles nothing.
    # The first run below (the torch-import check) writes the cache.
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)

    print(f"python: {sys.version.split()[0]}, cpus: {os.cpu_count()}, runs: {args.runs} (median)\n")
    print_no_model_table(args.no_model_file, args.runs, gradlint)
    results = {}
    for sample in samples:
        print(f"measuring {sample}", file=sys.stderr, flush=True)  # progress: a sample takes seconds per run
        results[sample] = (measure([sys.executable, "-c", BASELINE, sample], args.runs),
                           measure([*gradlint, "-q", "--exit-zero", sample], args.runs))
    if results:
        print_model_tables(results)


if __name__ == "__main__":
    main()
