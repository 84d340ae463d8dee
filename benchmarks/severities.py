"""What each rule's severities mean on the corpus: per rule and severity, the share of the cases it
flagged that failed to train.

    python benchmarks/severities.py [--only NAME ...] [--out PATH]     # lint the cases, then the table
    python benchmarks/severities.py --from benchmarks/evaluation.json  # the severities an evaluate.py run stored

A case counts under the highest severity the rule gave it (a rule may report several findings on
one model). Precision is the share of those cases labelled DIVERGED or STALLED in
benchmarks/truth.json (an `[error]` should mean "this setup diverges or fails to train"), and the
share labelled DIVERGED beside it. Each case is linted as evaluate.py lints it: gradlint's default
run in process, seed 0, one thread.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
SEVERITIES = ("error", "warning", "info")
FAILED = ("DIVERGED", "STALLED")


def highest_severities(findings) -> dict[str, str]:
    """Rule code -> the highest severity among its findings."""
    result: dict[str, str] = {}
    for finding in findings:
        severity = finding.severity.value
        if finding.code not in result or SEVERITIES.index(severity) < SEVERITIES.index(result[finding.code]):
            result[finding.code] = severity
    return result


def severity_table(cases: list[dict]) -> dict:
    """{code: {severity: {"flagged", "failed", "diverged", "precision", "names"}}} from cases holding
    "name", "label" and "severities" (code -> highest severity)."""
    table: dict = {}
    for case in cases:
        for code, severity in case["severities"].items():
            cell = table.setdefault(code, {}).setdefault(severity, {"flagged": 0, "failed": 0, "diverged": 0,
                                                                     "names": []})
            cell["flagged"] += 1
            cell["failed"] += case["label"] in FAILED
            cell["diverged"] += case["label"] == "DIVERGED"
            cell["names"].append(case["name"])
    for cells in table.values():
        for cell in cells.values():
            cell["precision"] = cell["failed"] / cell["flagged"]
    return dict(sorted(table.items()))


def overall(cases: list[dict], severity: str) -> dict:
    """Cases with at least one finding of `severity` or above, and the share that failed to train."""
    rank = SEVERITIES.index(severity)
    flagged = [c for c in cases if any(SEVERITIES.index(s) <= rank for s in c["severities"].values())]
    failed = sum(c["label"] in FAILED for c in flagged)
    return {"flagged": len(flagged), "failed": failed, "precision": failed / len(flagged) if flagged else None}


def markdown(table: dict, cases: list[dict]) -> str:
    lines = ["| rule | error: flagged, failed (diverged) | precision | warning: flagged, failed (diverged) | "
             "precision | info: flagged, failed (diverged) |",
             "|---|---|---|---|---|---|"]
    for code, cells in table.items():
        row = [code]
        for severity in SEVERITIES:
            cell = cells.get(severity)
            text = f"{cell['flagged']}, {cell['failed']} ({cell['diverged']})" if cell else "-"
            row.append(text)
            if severity != "info":
                row.append(f"{cell['precision']:.2f}" if cell else "-")
        lines.append("| " + " | ".join(row) + " |")
    for severity in ("error", "warning"):
        total = overall(cases, severity)
        share = f"{total['precision']:.2f}" if total["precision"] is not None else "-"
        lines.append(f"\ncases with a finding at {severity} or above: {total['flagged']}, of which "
                     f"{total['failed']} failed to train (precision {share})")
    return "\n".join(lines) + "\n"


def lint_cases(truth: dict, only: list[str] | None, cases_dir: str) -> list[dict]:
    import torch

    from gradlint.discover import Target
    from gradlint.engine import Settings, lint_spec
    from gradlint.load import load_target
    from gradlint.registry import all_rules

    torch.set_num_threads(1)
    cases = []
    for name in sorted(truth):
        if only and name not in only:
            continue
        spec = load_target(Target(os.path.join(cases_dir, name + ".py")))
        report = lint_spec(spec, Settings(rules=all_rules(), seed=0))
        severities = highest_severities(report.findings)
        cases.append({"name": name, "label": truth[name]["label"], "severities": severities})
        print(f"{name:48s} {truth[name]['label']:9s} "
              f"{' '.join(f'{c}:{s}' for c, s in sorted(severities.items())) or '-'}", flush=True)
    return cases


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--truth", default=os.path.join(HERE, "truth.json"))
    parser.add_argument("--cases", default=os.path.join(HERE, "cases"))
    parser.add_argument("--only", nargs="*")
    parser.add_argument("--from", dest="source", metavar="PATH",
                        help="read the severities of an evaluate.py run (its --out) instead of linting")
    parser.add_argument("--out", metavar="PATH", help="write the cases and the table as JSON")
    args = parser.parse_args(argv)
    truth = json.load(open(args.truth))["cases"]
    if args.source:
        cases = [{"name": c["name"], "label": truth[c["name"]]["label"], "severities": c["severities"]}
                 for c in json.load(open(args.source))["cases"]
                 if c["name"] in truth and c.get("error") is None and (not args.only or c["name"] in args.only)]
    else:
        cases = lint_cases(truth, args.only, args.cases)
    table = severity_table(cases)
    print(f"\n{len(cases)} cases\n")
    print(markdown(table, cases), end="")
    if args.out:
        with open(args.out, "w") as handle:
            json.dump({"cases": cases, "table": table}, handle, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
