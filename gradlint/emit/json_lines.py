"""One JSON object per line, streamed as each target finishes: a file without a model
({"target", "path", "skipped"}), a target that failed ({"target", "path", "error"}), or one that only the static rules could lint ({"target", "path",
"note"}); each finding with its target; then, for every linted model, its risk ({"target", "path",
"risk", "level", "causes", "suggestion"}, with "risk_incomplete" when the risk could not weigh every
rule, a null risk when the model did not run, and "suggestion" as in `json`). For log tools; `json`
has the summary too."""

from __future__ import annotations

import json
from collections.abc import Sequence

from gradlint.findings import ModelReport


def render_model(report: ModelReport, quiet: bool = False, first: bool = True, palette: object = None) -> str:
    """The target's records (never coloured: `palette` is accepted as the text formats take it)."""
    lines = []
    if report.skipped is not None:
        lines.append({"target": report.target, "path": report.path, "skipped": report.skipped})
    if report.error is not None:
        lines.append({"target": report.target, "path": report.path, "error": report.error})
    elif report.not_run:
        lines.append({"target": report.target, "path": report.path, "note": report.not_run})
    lines.extend({"target": report.target, **finding.to_dict()} for finding in report.findings)
    if report.linted and report.error is None:
        lines.append({"target": report.target, "path": report.path,
                      "risk": None if report.risk is None else round(report.risk, 4), "level": report.level,
                      "causes": list(report.causes),
                      **({"risk_incomplete": list(report.incomplete)} if report.incomplete else {}),
                      "suggestion": None if report.suggestion is None else report.suggestion.to_dict()})
    return "".join(json.dumps(line) + "\n" for line in lines)


def render_end(reports: Sequence[ModelReport], quiet: bool = False, baseline=None, first: bool = True) -> str:
    return ""


def render(reports: Sequence[ModelReport], quiet: bool = False, baseline=None) -> str:
    return "".join(render_model(r, quiet) for r in reports)
