"""What the HTML report costs on the samples: its size, and its time against the same run in JSON.

1. End to end: `gradlint samples/ --format html -o FILE` against `gradlint samples/ --format json
   -o FILE`, alternated, N runs each (median). Both formats lint the same way and carry the same
   measurements; the difference is writing the page.
2. Rendering alone: the reports of the samples linted once in this process, then each format
   rendered N times (median), which isolates the writer from the noise of linting.
3. Sizes: the page, the JSON, and the JSON's `measurements` keys.

    python benchmarks/bench_report.py [--runs 3] [--jobs 2]

Prints Markdown for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[1]


def timed_run(fmt: str, output: Path, jobs: int) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "gradlint", "samples/", "--format", fmt, "-o", str(output), "--exit-zero",
                    "-j", str(jobs)], cwd=REPOSITORY, check=True)
    return time.perf_counter() - started


def render_times(runs: int) -> tuple[float, float]:
    """Median seconds to render the samples' reports as JSON and as HTML, in this process."""
    sys.path.insert(0, str(REPOSITORY))
    os.chdir(REPOSITORY)
    from gradlint.discover import Target
    from gradlint.emit import FORMATS
    from gradlint.engine import Settings, lint_target
    from gradlint.overrides import Overrides
    from gradlint.registry import all_rules

    paths = sorted(p for p in glob.glob("samples/*.py") if not p.endswith("data_utils.py"))
    reports = [lint_target(Target(p), Settings(rules=tuple(all_rules())), Overrides()) for p in paths]
    medians = []
    for fmt in ("json", "html"):
        times = []
        for _ in range(runs):
            started = time.perf_counter()
            FORMATS[fmt](reports)
            times.append(time.perf_counter() - started)
        medians.append(statistics.median(times))
    return medians[0], medians[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        page, document = Path(folder) / "report.html", Path(folder) / "report.json"
        times = {"json": [], "html": []}
        for _ in range(args.runs):
            times["json"].append(timed_run("json", document, args.jobs))
            times["html"].append(timed_run("html", page, args.jobs))
        page_bytes, json_bytes = page.stat().st_size, document.stat().st_size
        models = json.loads(document.read_text())["models"]
    measurements = sum(len(json.dumps(m["measurements"], indent=2)) for m in models if "measurements" in m)
    json_time, html_time = (statistics.median(times[f]) for f in ("json", "html"))
    render_json, render_html = render_times(args.runs)
    print(f"python: {sys.version.split()[0]}, cpus: {os.cpu_count()}, runs: {args.runs} (median), -j {args.jobs}, "
          f"{len(models)} models\n")
    print("| `gradlint samples/ -o FILE` | wall time | size |")
    print("|---|---|---|")
    print(f"| `--format json` | {json_time:.2f} s | {json_bytes / 1024:.0f} KB (measurements: "
          f"{measurements / 1024:.0f} KB) |")
    print(f"| `--format html` | {html_time:.2f} s | {page_bytes / 1024:.0f} KB |")
    print(f"| ratio html / json | {html_time / json_time:.3f}x | {page_bytes / json_bytes:.2f}x |\n")
    print(f"Rendering the {len(models)} reports in-process: json {render_json * 1000:.1f} ms, "
          f"html {render_html * 1000:.1f} ms ({render_html / len(models) * 1000:.1f} ms a model).")


if __name__ == "__main__":
    main()
