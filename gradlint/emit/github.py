"""GitHub Actions workflow commands: an annotation per finding on the pull request's diff.

GitHub shows at most 10 annotations per level (error, warning, notice) per step and drops the
rest silently, so errors come first, the findings beyond the limit are printed as plain log lines,
and a last notice says how many were not annotated. SARIF (code scanning) has no such limit. Each
linted model's risk is a notice on its definition, before the info findings (not with -q).
"""

from __future__ import annotations

from collections.abc import Sequence

from gradlint.emit.concise import finding_line
from gradlint.emit.paths import repo_path, repo_root
from gradlint.emit.summary import error_line, risk_line, suggestion_lines, summary_lines
from gradlint.findings import Finding, ModelReport, Severity

LIMIT = 10  # annotations per level per step
_COMMANDS = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "notice"}


def render(reports: Sequence[ModelReport], quiet: bool = False, baseline=None) -> str:
    root = repo_root()
    # (level, annotation, plain log line), errors first; load errors before findings.
    items: list[tuple[str, str, str]] = []
    for report in reports:
        if report.error is not None:
            properties = f"file={_property(repo_path(report.path, root))},title=gradlint (load error)"
            items.append(("error", f"::error {properties}::{_data(error_line(report))}", error_line(report)))
        elif report.not_run:
            line = f"{report.path}: {report.not_run}"
            properties = f"file={_property(repo_path(report.path, root))},title=gradlint (static rules only)"
            items.append(("warning", f"::warning {properties}::{_data(line)}", line))
    findings = sorted((f for r in reports for f in r.findings), key=lambda f: -f.severity.rank)
    items.extend((_COMMANDS[f.severity], _annotation(f, root), finding_line(f)) for f in findings
                 if f.severity != Severity.INFO)
    if not quiet:  # the risks come before info findings: a notice over the limit is not annotated
        items.extend(("notice", _risk_annotation(r, root), risk_line(r)) for r in reports
                     if r.linted and r.error is None)
    items.extend(("notice", _annotation(f, root), finding_line(f)) for f in findings if f.severity == Severity.INFO)

    counts = {level: sum(item[0] == level for item in items) for level in ("error", "warning", "notice")}
    overflow = sum(max(0, n - LIMIT) for n in counts.values())
    if overflow and counts["notice"] >= LIMIT:  # keep a notice free for the message about the others
        overflow += 1
    limits = {"error": LIMIT, "warning": LIMIT, "notice": LIMIT - 1 if overflow else LIMIT}
    shown = {level: 0 for level in limits}
    lines, plain = [], []
    for level, annotation, line in items:
        if shown[level] < limits[level]:
            shown[level] += 1
            lines.append(annotation)
        else:
            plain.append(line)
    lines.extend(plain)
    if overflow:
        lines.append(f"::notice title=gradlint::{overflow} more finding{'' if overflow == 1 else 's'} not annotated "
                     f"(GitHub shows {LIMIT} annotations per level per step); they are listed in the log above; "
                     "upload --format sarif to code scanning to see all of them")
    if not quiet:
        lines.extend(summary_lines(reports, baseline))
    return "\n".join(lines) + ("\n" if lines else "")


def _annotation(finding: Finding, root: str) -> str:
    loc = finding.location
    properties = (f"file={_property(repo_path(loc.path, root))},line={loc.line},col={loc.col},"
                  f"title={_property(f'gradlint ({finding.code})')}")
    message = finding_line(finding)
    if finding.fix is not None:
        message += f"\n  help: {finding.fix.message}"
        if finding.fix.code:
            message += "".join(f"\n      {line}" for line in finding.fix.code.splitlines())
    return f"::{_COMMANDS[finding.severity]} {properties}::{_data(message)}"


def _risk_annotation(report: ModelReport, root: str) -> str:
    """A notice on the model's definition: its risk, level and causes, the headline of the report."""
    location = report.location
    line = f",line={location.line}" if location is not None and location.path == report.path else ""
    title = f"gradlint risk: {report.level}" if report.risk is not None else "gradlint: no risk"
    properties = f"file={_property(repo_path(report.path, root))}{line},title={_property(title)}"
    return f"::notice {properties}::{_data(chr(10).join([risk_line(report), *suggestion_lines(report)]))}"


def _data(text: str) -> str:
    """Escape a command's message as actions/toolkit does (command.ts escapeData)."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _property(text: str) -> str:
    return _data(text).replace(":", "%3A").replace(",", "%2C")
