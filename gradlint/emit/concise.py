"""One line per finding, then one risk line per model (the default, and the pre-commit format)."""

from __future__ import annotations

from collections.abc import Sequence

from gradlint.emit.summary import error_line, risk_line, summary_lines
from gradlint.findings import Finding, ModelReport


def finding_line(finding: Finding) -> str:
    loc = finding.location
    module = f"{finding.module}: " if finding.module else ""
    return f"{loc.path}:{loc.line}:{loc.col}: {finding.code} [{finding.severity.value}] {module}{finding.message}"


def render(reports: Sequence[ModelReport], quiet: bool = False, baseline=None) -> str:
    lines: list[str] = []
    for report in reports:
        if report.error is not None:
            lines.append(error_line(report))
            if not report.linted:
                continue
        lines.extend(finding_line(f) for f in report.findings)
        if not quiet:
            lines.append(risk_line(report))
            lines.extend(f"  assumed {a}" for a in report.assumptions)
    if not quiet:
        lines.extend(summary_lines(reports, baseline))
    return "\n".join(lines) + ("\n" if lines else "")
