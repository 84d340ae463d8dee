"""Each finding with its source line and the fix to write there (for reading by hand)."""

from __future__ import annotations

import linecache
from collections.abc import Sequence

from gradlint.emit.summary import error_line, risk_line, summary_lines
from gradlint.findings import Finding, ModelReport


def render_finding(finding: Finding) -> list[str]:
    loc = finding.location
    lines = [f"{finding.code} [{finding.severity.value}] {finding.name}: {finding.message}",
             f"  --> {loc.path}:{loc.line}:{loc.col}"]
    source = linecache.getline(loc.path, loc.line).rstrip()
    if source:
        gutter = " " * len(str(loc.line))
        lines += [f"{gutter} |", f"{loc.line} | {source}", f"{gutter} | {' ' * (loc.col - 1)}^"]
    if finding.module:
        lines.append(f"  = module: {finding.module}")
    if finding.fix is not None:
        lines.append(f"  help: {finding.fix.message}")
        if finding.fix.code:
            lines.extend(f"      {code_line}" for code_line in finding.fix.code.splitlines())
    return lines


def render(reports: Sequence[ModelReport], quiet: bool = False, baseline=None) -> str:
    lines: list[str] = []
    for report in reports:
        if report.error is not None:
            lines += [error_line(report), ""]
            if not report.linted:
                continue
        for finding in report.findings:
            lines += render_finding(finding) + [""]
        if not quiet:
            lines.append(risk_line(report))
            lines.extend(f"  assumed {a}" for a in report.assumptions)
            passes = report.passes
            lines.append(f"  cost: {passes.get('forward', 0)} forward, {passes.get('backward', 0)} backward pass(es)")
            lines.append("")
    if not quiet:
        lines.extend(summary_lines(reports, baseline))
    return "\n".join(lines).rstrip("\n") + "\n"
