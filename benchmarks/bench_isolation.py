"""What isolating each target in a worker process costs, and what parallel workers and streaming buy.

    python benchmarks/bench_isolation.py [--runs 3]

Each measurement is the median wall time of RUNS fresh processes, measured in this run:
1. The samples directory and a directory of 50 model files (the samples, copied three times and
   cut at 50): the pre-isolation way, every target linted in one process one after another
   (`engine.lint_target` in a loop, what `gradlint` did before workers, torch at its default
   thread count), against `gradlint DIR -j 1` and `-j 2` (each worker one torch thread).
2. The worker start: 20 copies of a tiny model linted with one static rule, so that the cost per
   target is mostly the start: per-target time in process and in workers.
3. Time to the first finding on stdout, on a directory of 20 model files: in process every
   report came at the end; workers stream each target's findings as soon as it and the ones
   before it are done.

Prints Markdown tables for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import glob
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

IN_PROCESS = """
import sys
from gradlint.discover import expand
from gradlint.engine import Settings, lint_target
from gradlint.overrides import Overrides
from gradlint.registry import all_rules
select = sys.argv[2] if len(sys.argv) > 2 else None
rules = tuple(r for r in all_rules() if select is None or r.code == select)
reports = [lint_target(target, Settings(rules=rules), Overrides()) for target in expand([sys.argv[1]])]
for report in reports:  # as gradlint printed before workers: every report once all were done
    for finding in report.findings:
        print(finding.code, finding.message)
"""

TINY = """import torch
import torch.nn as nn


def build_model():
    return nn.Sequential(nn.Linear(8, 8), nn.BatchNorm1d(8), nn.Linear(8, 2))


def example_inputs():
    return (torch.randn(1, 8),)
"""


def wall(command: list[str]) -> tuple[float, float]:
    """(seconds to the first line on stdout, seconds to the end) of one run."""
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    first = None
    for _ in process.stdout:
        if first is None:
            first = time.perf_counter() - start
    errors = process.stderr.read().decode(errors="replace")
    process.wait()
    end = time.perf_counter() - start
    # Every command runs with --exit-zero (or prints findings and exits 0): anything else means
    # gradlint did not lint, and its time would be meaningless.
    if process.returncode != 0 or first is None:
        raise SystemExit(f"{' '.join(command)} failed (exit {process.returncode}, no findings printed):\n{errors}")
    return (first if first is not None else end), end


def median(command: list[str], runs: int) -> tuple[float, float]:
    results = [wall(command) for _ in range(runs)]
    return statistics.median(r[0] for r in results), statistics.median(r[1] for r in results)


def copies(folder: str, files: list[str], count: int) -> str:
    os.makedirs(folder)
    for i in range(count):
        source = files[i % len(files)]
        shutil.copy(source, os.path.join(folder, f"{i:02d}_{os.path.basename(source)}"))
    # The samples import their data helpers from beside them.
    shutil.copy("samples/data_utils.py", folder)
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    python, gradlint = sys.executable, [sys.executable, "-m", "gradlint", "-q", "--exit-zero"]
    samples = sorted(p for p in glob.glob("samples/*.py") if os.path.basename(p) != "data_utils.py")
    scratch = tempfile.mkdtemp(prefix="gradlint-bench-")
    fifty = copies(os.path.join(scratch, "fifty"), samples, 50)
    twenty = copies(os.path.join(scratch, "twenty"), samples, 20)
    tiny = os.path.join(scratch, "tiny")
    os.makedirs(tiny)
    for i in range(20):
        with open(os.path.join(tiny, f"tiny_{i:02d}.py"), "w") as handle:
            handle.write(TINY)
    one_tiny = os.path.join(scratch, "one_tiny")
    os.makedirs(one_tiny)
    shutil.copy(os.path.join(tiny, "tiny_00.py"), one_tiny)

    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cpus, median of {args.runs} runs\n")
    print("| directory | in one process, serial (before) | workers, -j 1 | workers, -j 2 | -j 1 / before | "
          "-j 2 / before |")
    print("|---|---|---|---|---|---|")
    for name, folder in (("samples/ (18 models)", "samples"), ("50 model files", fifty)):
        print(f"measuring {name}", file=sys.stderr, flush=True)
        before = median([python, "-c", IN_PROCESS, folder], args.runs)[1]
        one = median([*gradlint, "-j", "1", folder], args.runs)[1]
        two = median([*gradlint, "-j", "2", folder], args.runs)[1]
        print(f"| {name} | {before:.1f} s | {one:.1f} s | {two:.1f} s | {one / before:.2f}x | {two / before:.2f}x |")

    print("\n| 20 tiny models, one static rule (GL401) | 1 model | 20 models | per extra model |")
    print("|---|---|---|---|")
    print("measuring the worker start", file=sys.stderr, flush=True)
    for label, command in (("in one process", [python, "-c", IN_PROCESS]),
                           ("workers, -j 1", [*gradlint, "-j", "1", "--select", "GL401"])):
        extra = ["GL401"] if label == "in one process" else []
        single = median([*command, one_tiny, *extra], args.runs)[1]
        many = median([*command, tiny, *extra], args.runs)[1]
        print(f"| {label} | {single:.2f} s | {many:.2f} s | {(many - single) / 19 * 1000:.0f} ms |")

    print("\n| 20 model files | first finding on stdout | all done |")
    print("|---|---|---|")
    print("measuring the first finding", file=sys.stderr, flush=True)
    for label, command in (("in one process, serial (before)", [python, "-c", IN_PROCESS, twenty]),
                           ("workers, -j 2 (streaming)", [*gradlint, "-j", "2", twenty])):
        first, end = median(command, args.runs)
        print(f"| {label} | {first:.1f} s | {end:.1f} s |")
    shutil.rmtree(scratch)


if __name__ == "__main__":
    main()
