"""Counts shared by the text formats."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING

from gradlint.emit.style import PLAIN, Palette
from gradlint.findings import ModelReport

if TYPE_CHECKING:
    from gradlint.baseline import BaselineResult


def summary_line(reports: Sequence[ModelReport]) -> str:
    linted = [r for r in reports if r.linted]  # with the models that failed to run: their static rules ran
    failed = sum(r.error is not None for r in reports)
    findings = [f for r in reports for f in r.findings]
    by_severity = Counter(f.severity.value for f in findings)
    parts = [f"{by_severity[s]} {s}{'s' if by_severity[s] != 1 and s != 'info' else ''}"
             for s in ("error", "warning", "info") if by_severity[s]]
    noun = "finding" if len(findings) == 1 else "findings"
    models = f"{len(linted)} model{'' if len(linted) == 1 else 's'}"
    line = f"Found {len(findings)} {noun} in {models}"
    if parts:
        line += f" ({', '.join(parts)})"
    if failed:
        line += f"; {failed} target{'' if failed == 1 else 's'} failed to load"
    skipped = sum(r.skipped is not None for r in reports)
    if skipped:  # -v names them
        line += f"; {skipped} file{'' if skipped == 1 else 's'} without a model skipped"
    return line + "."


def risk_line(report: ModelReport, palette: Palette = PLAIN) -> str:
    """`target: risk 0.99 (high); causes: ...`, saying what the risk could not weigh, or why there
    is none."""
    if report.risk is None:
        return f"{palette.path(report.target)}: no risk ({'; '.join(report.incomplete)})"
    incomplete = f", incomplete: {', '.join(report.incomplete)}" if report.incomplete else ""
    causes = f"; causes: {', '.join(report.causes)}" if report.causes else ""
    risk = palette.level(f"risk {report.risk:.2f} ({report.level}", report.level)
    return f"{palette.path(report.target)}: {risk}{incomplete}){causes}"


def suggestion_lines(report: ModelReport) -> list[str]:
    """The learning-rate suggestion under the risk line, when one was made."""
    return [f"  {report.suggestion.line()}"] if report.suggestion is not None else []


def error_line(report: ModelReport, palette: Palette = PLAIN) -> str:
    return f"{palette.path(report.path)}: {palette.error('error')}: {report.error}"


def baseline_line(result: BaselineResult) -> str:
    hidden = f"{result.hidden} known finding{'' if result.hidden == 1 else 's'} hidden"
    if not result.fixed:
        return f"Baseline {result.path}: {hidden}."
    fixed = f"{result.fixed} entr{'y' if result.fixed == 1 else 'ies'} fixed"
    return f"Baseline {result.path}: {hidden}, {fixed} (update it with --write-baseline)."


def summary_lines(reports: Sequence[ModelReport], baseline: BaselineResult | None) -> list[str]:
    return [summary_line(reports)] + ([baseline_line(baseline)] if baseline is not None else [])
