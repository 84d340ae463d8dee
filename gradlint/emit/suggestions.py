"""`--suggest-lr`: only the learning-rate suggestion, one line per model, for scripts.

    model.py::build_model: suggested lr: 0.0039 (configured 1, 256x too high; bound: curvature)

A model without a suggestion says why (it did not run, its risk is incomplete, it has no
optimizer); a target that failed to load prints its error line, as in every format.
"""

from __future__ import annotations

from collections.abc import Sequence

from gradlint.emit.summary import error_line
from gradlint.findings import ModelReport


def render_model(report: ModelReport) -> str:
    if report.error is not None and not report.linted or report.skipped is not None:
        return "" if report.skipped is not None else error_line(report) + "\n"
    if report.suggestion is not None:
        return f"{report.target}: {report.suggestion.line()}\n"
    return f"{report.target}: no suggestion ({_why_not(report)})\n"


def render(reports: Sequence[ModelReport]) -> str:
    return "".join(render_model(report) for report in reports)


def _why_not(report: ModelReport) -> str:
    if report.error is not None:
        return report.error
    if report.risk is None or report.incomplete:
        return "the risk is incomplete: " + "; ".join(report.incomplete)
    return "no optimizer whose lr could be scaled"
