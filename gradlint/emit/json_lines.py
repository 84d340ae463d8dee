"""One JSON object per line: each finding with its target, each target that failed to load
({"target", "path", "error"}), and each that only the static rules could lint ({"target", "path",
"note"}). For streaming into log tools; `json` has the risk and summary."""

from __future__ import annotations

import json
from collections.abc import Sequence

from gradlint.findings import ModelReport


def render_model(report: ModelReport, quiet: bool = False, first: bool = True) -> str:
    lines = []
    if report.error is not None:
        lines.append({"target": report.target, "path": report.path, "error": report.error})
    elif report.not_run:
        lines.append({"target": report.target, "path": report.path, "note": report.not_run})
    lines.extend({"target": report.target, **finding.to_dict()} for finding in report.findings)
    return "".join(json.dumps(line) + "\n" for line in lines)


def render_end(reports: Sequence[ModelReport], quiet: bool = False, baseline=None, first: bool = True) -> str:
    return ""


def render(reports: Sequence[ModelReport], quiet: bool = False, baseline=None) -> str:
    return "".join(render_model(r, quiet) for r in reports)
