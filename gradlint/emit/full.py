"""Each finding with its source line and the fix to write there (for reading by hand)."""

from __future__ import annotations

import linecache
from collections.abc import Sequence

from gradlint.emit.style import PLAIN, Palette
from gradlint.emit.summary import error_line, risk_line, suggestion_lines, summary_lines
from gradlint.findings import Finding, ModelReport


def render_finding(finding: Finding, palette: Palette = PLAIN) -> list[str]:
    loc = finding.location
    severity = finding.severity.value
    lines = [f"{palette.severity(f'{finding.code} [{severity}]', severity)} {finding.name}: {finding.message}",
             f"  --> {palette.path(loc.path)}:{loc.line}:{loc.col}"]
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


def render_model(report: ModelReport, quiet: bool = False, first: bool = True, palette: Palette = PLAIN) -> str:
    """One target's paragraphs: its error, each finding, then (unless quiet) its risk, assumptions
    and cost. Paragraphs are separated by a blank line, also from what was printed before
    (unless `first`)."""
    paragraphs: list[list[str]] = []
    if report.error is not None:
        paragraphs.append([error_line(report, palette)])
    if report.linted:
        paragraphs.extend(render_finding(finding, palette) for finding in report.findings)
        if not quiet and report.error is None:
            passes = report.passes
            paragraphs.append([risk_line(report, palette), *suggestion_lines(report),
                               *(f"  assumed {a}" for a in report.assumptions),
                               f"  cost: {passes.get('forward', 0)} forward, {passes.get('backward', 0)} "
                               "backward pass(es)"])
    return _join(paragraphs, first)


def render_end(reports: Sequence[ModelReport], quiet: bool = False, baseline=None, first: bool = True) -> str:
    return "" if quiet else _join([summary_lines(reports, baseline)], first)


def render(reports: Sequence[ModelReport], quiet: bool = False, baseline=None, palette: Palette = PLAIN) -> str:
    text = ""
    for report in reports:
        text += render_model(report, quiet, first=not text, palette=palette)
    return text + render_end(reports, quiet, baseline, first=not text)


def _join(paragraphs: list[list[str]], first: bool) -> str:
    text = "\n".join("".join(line + "\n" for line in paragraph) for paragraph in paragraphs if paragraph)
    return text if first or not text else "\n" + text
