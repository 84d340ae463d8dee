"""Lint the standard recipes (benchmarks/recipes/) at one of their sizes, as a user runs gradlint.

    python benchmarks/lint_recipes.py [--size full|train|small] [-j N]

Each recipe file is copied to a temporary folder with its `SIZE = "full"` line set to the size
asked for (tests/test_recipes.py does the same at "small"), and the folder is linted by the
`gradlint` command (`--isolated --format json`). Prints one row per recipe: the
findings by severity (each error and warning named), the risk and what made it incomplete.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

RECIPES = Path(__file__).resolve().parent / "recipes"
FULL = 'SIZE = "full"'


def lint(size: str, jobs: int) -> list[dict]:
    with tempfile.TemporaryDirectory() as folder:
        for path in sorted(RECIPES.glob("*.py")):
            (Path(folder) / path.name).write_text(path.read_text().replace(FULL, f'SIZE = "{size}"'))
        result = subprocess.run([sys.executable, "-m", "gradlint", "--isolated", "--format", "json", "-j", str(jobs),
                                 folder], capture_output=True, text=True)
        if result.returncode not in (0, 1, 2) or not result.stdout:  # 2: a recipe failed, which its row says
            sys.exit(f"gradlint exited {result.returncode}: {result.stderr}")
        return json.loads(result.stdout)["models"]


def row(model: dict) -> str:
    name = Path(model["target"].partition("::")[0]).stem
    if "error" in model:
        return f"| {name} | failed: {model['error']} | | |"
    counts = Counter(f["severity"] for f in model["findings"])
    loud = "; ".join(f"{f['code']} [{f['severity']}]" for f in model["findings"] if f["severity"] != "info")
    infos = ", ".join(f["code"] for f in model["findings"] if f["severity"] == "info")
    findings = f"{counts['error']} / {counts['warning']} / {counts['info']}"
    named = "; ".join(part for part in (loud, f"info: {infos}" if infos else "") if part)
    incomplete = f" (incomplete: {', '.join(model['risk_incomplete'])})" if model.get("risk_incomplete") else ""
    return f"| {name} | {findings}{' (' + named + ')' if named else ''} | {model['risk']:.2f}{incomplete} |"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=("full", "train", "small"), default="full")
    parser.add_argument("-j", "--jobs", type=int, default=1)
    args = parser.parse_args(argv)
    models = lint(args.size, args.jobs)
    print(f"| recipe ({args.size}) | errors / warnings / infos | risk |")
    print("|---|---|---|")
    for model in models:
        print(row(model))
    return 0


if __name__ == "__main__":
    sys.exit(main())
