"""One line per finding, then one risk line per model (the default, and the pre-commit format)."""

from __future__ import annotations

from collections.abc import Sequence

from gradlint.emit.style import PLAIN, Palette
from gradlint.emit.summary import error_line, risk_line, suggestion_lines, summary_lines
from gradlint.findings import Finding, ModelReport


def finding_line(finding: Finding, palette: Palette = PLAIN) -> str:
    loc = finding.location
    module = f"{finding.module}: " if finding.module else ""
    severity = finding.severity.value
    code = palette.severity(f"{finding.code} [{severity}]", severity)
    return f"{palette.path(loc.path)}:{loc.line}:{loc.col}: {code} {module}{finding.message}"


def render_model(report: ModelReport, quiet: bool = False, first: bool = True, palette: Palette = PLAIN) -> str:
    """One target's lines: its error or findings, then (unless quiet) its risk and assumptions."""
    lines: list[str] = []
    if report.error is not None:
        lines.append(error_line(report, palette))
    if report.linted:
        lines.extend(finding_line(f, palette) for f in report.findings)
        if not quiet and report.error is None:
            lines.append(risk_line(report, palette))
            lines.extend(suggestion_lines(report))
            lines.extend(f"  assumed {a}" for a in report.assumptions)
    return "".join(line + "\n" for line in lines)


def render_end(reports: Sequence[ModelReport], quiet: bool = False, baseline=None, first: bool = True) -> str:
    """What follows the last target: the summary."""
    return "" if quiet else "".join(line + "\n" for line in summary_lines(reports, baseline))


def render(reports: Sequence[ModelReport], quiet: bool = False, baseline=None, palette: Palette = PLAIN) -> str:
    return "".join(render_model(r, quiet, palette=palette) for r in reports) + render_end(reports, quiet, baseline)
