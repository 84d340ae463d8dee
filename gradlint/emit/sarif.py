"""SARIF 2.1.0 for GitHub code scanning (`github/codeql-action/upload-sarif`).

GitHub requires: rules with id, short and full description and help; results with a message,
a location whose URI is relative to the repository root, and partialFingerprints (GitHub
tracks an alert across commits by them). An empty string is never a valid value. Targets that
failed to load are tool execution notifications of the run, naming the file. Each result carries
its model's risk in `properties`; a model rated medium or high is also an alert of its own (rule
`explosion-risk`), and the run's `properties.models` lists every model's risk.
"""

from __future__ import annotations

import hashlib
import json
import linecache
from collections import Counter
from collections.abc import Sequence

from gradlint import __version__
from gradlint.emit.paths import repo_path, repo_root
from gradlint.emit.summary import risk_line, suggestion_lines
from gradlint.findings import Finding, ModelReport, Severity
from gradlint.registry import rule_by_code

SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
LEVELS = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "note"}
PROBLEM_SEVERITY = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "recommendation"}
FINGERPRINT = "gradlintFinding/v1"
RISK_RULE = {
    "id": "explosion-risk",
    "name": "explosion-risk",
    "shortDescription": {"text": "The predicted risk that training this model diverges is medium or high."},
    "fullDescription": {"text": "gradlint's probability that training the model with its configuration diverges "
                                "(NaN, exploding loss or gradient norm) in its first few hundred steps, from the "
                                "evidence of every rule; medium from 0.3, high from 0.7. The causes name the rules "
                                "whose findings weigh most."},
    "help": {"text": "Fix the findings named as causes, starting with the first; `gradlint --explain CODE` "
                     "documents each."},
    "defaultConfiguration": {"level": "warning"},
    "properties": {"tags": ["gradlint", "risk"], "problem.severity": "warning"},
}


def render(reports: Sequence[ModelReport], quiet: bool = False, baseline=None) -> str:
    root = repo_root()
    findings = [f for r in reports for f in r.findings]
    codes = sorted({f.code for f in findings})
    index = {code: i for i, code in enumerate(codes)}
    occurrences: Counter = Counter()
    results = []
    for report in reports:
        risk = _risk_properties(report)
        for finding in report.findings:
            uri = repo_path(finding.location.path, root)
            key = f"{repo_path(report.path, root)}\0{finding.code}\0{finding.module}"
            occurrences[key] += 1
            results.append({**_result(finding, uri, index[finding.code], key, occurrences[key]), "properties": risk})
    risky = [r for r in reports if r.linted and r.error is None and r.risk is not None and r.level != "low"]
    results += [_risk_result(report, root, len(codes)) for report in risky]
    notifications = [{
        "level": "error",
        "message": {"text": f"{report.path}: {report.error}"},
        "locations": [{"physicalLocation": {"artifactLocation": {"uri": repo_path(report.path, root)}}}],
        "descriptor": {"id": "load-error"},
    } for report in reports if report.error is not None]
    partial = [{  # linted, but only by the static rules (the model cannot run)
        "level": "warning",
        "message": {"text": f"{report.path}: {report.not_run}"},
        "locations": [{"physicalLocation": {"artifactLocation": {"uri": repo_path(report.path, root)}}}],
        "descriptor": {"id": "static-rules-only"},
    } for report in reports if report.error is None and report.not_run]
    run = {
        "tool": {"driver": {
            "name": "gradlint",
            "version": __version__,
            "semanticVersion": __version__,
            "rules": [_rule(rule_by_code(code), code, findings) for code in codes] + ([RISK_RULE] if risky else []),
        }},
        "invocations": [{"executionSuccessful": not notifications,
                         "toolExecutionNotifications": notifications + partial}],
        "results": results,
        # Every linted model's risk, for tools that read the log rather than the alerts.
        "properties": {"models": [{"target": r.target, "path": repo_path(r.path, root), **_risk_properties(r)}
                                  for r in reports if r.linted and r.error is None]},
    }
    return json.dumps({"$schema": SCHEMA, "version": "2.1.0", "runs": [run]}, indent=2) + "\n"


def _risk_properties(report: ModelReport) -> dict:
    risk = None if report.risk is None else round(report.risk, 4)
    properties = {"risk": risk, "riskLevel": report.level}
    if report.incomplete:
        properties["riskIncomplete"] = list(report.incomplete)
    if report.suggestion is not None:
        properties["suggestion"] = report.suggestion.to_dict()
    return properties


def _risk_result(report: ModelReport, root: str, rule_index: int) -> dict:
    """A model rated medium or high as an alert of its own, on the model's definition: code
    scanning shows results, not run properties, and the risk is the report's headline."""
    location = report.location
    region = {"startLine": location.line, "startColumn": location.col} \
        if location is not None and location.path == report.path else {"startLine": 1}
    return {
        "ruleId": RISK_RULE["id"],
        "ruleIndex": rule_index,
        "level": "error" if report.level == "high" else "warning",
        "message": {"text": "\n".join([risk_line(report), *(s.strip() for s in suggestion_lines(report))])},
        "locations": [{"physicalLocation": {"artifactLocation": {"uri": repo_path(report.path, root)},
                                            "region": region}}],
        "partialFingerprints": {FINGERPRINT: hashlib.sha256(
            f"{repo_path(report.path, root)}\0risk\0{report.target}".encode()).hexdigest()[:32] + ":1"},
        "properties": _risk_properties(report),
    }


def _rule(rule, code: str, findings: Sequence[Finding]) -> dict:
    if rule is None:  # a finding from a rule no longer installed: describe it from the finding
        name = next(f.name for f in findings if f.code == code)
        return {"id": code, "name": name, "shortDescription": {"text": name}, "fullDescription": {"text": name},
                "help": {"text": name}}
    doc = rule.doc() or rule.name
    summary = rule.summary() or rule.name
    return {
        "id": rule.code,
        "name": rule.name,
        "shortDescription": {"text": summary[:1024]},
        "fullDescription": {"text": _section(doc, "## What it does") or summary},
        "help": {"text": doc, "markdown": doc},
        "defaultConfiguration": {"level": LEVELS[rule.severity]},
        "properties": {"tags": ["gradlint", rule.family], "problem.severity": PROBLEM_SEVERITY[rule.severity]},
    }


def _result(finding: Finding, uri: str, rule_index: int, key: str, occurrence: int) -> dict:
    loc = finding.location
    message = f"{finding.module}: {finding.message}" if finding.module else finding.message
    if finding.fix is not None:
        message += f"\nhelp: {finding.fix.message}" + (f": {finding.fix.code}" if finding.fix.code else "")
    source = linecache.getline(loc.path, loc.line).rstrip() if loc.path.endswith(".py") else ""
    location: dict = {"physicalLocation": {
        "artifactLocation": {"uri": uri},
        "region": {"startLine": loc.line, "startColumn": loc.col, "endLine": loc.line,
                   "endColumn": max(loc.col + 1, len(source) + 1)},
    }}
    if finding.module:
        location["logicalLocations"] = [{"fullyQualifiedName": finding.module, "kind": "module"}]
    return {
        "ruleId": finding.code,
        "ruleIndex": rule_index,
        "level": LEVELS[finding.severity],
        "message": {"text": message},
        "locations": [location],
        # File, code and module path, not the line: the alert survives edits above it (as baselines do).
        "partialFingerprints": {FINGERPRINT: f"{hashlib.sha256(key.encode()).hexdigest()[:32]}:{occurrence}"},
    }


def _section(doc: str, heading: str) -> str:
    _, found, rest = doc.partition(heading)
    return rest.split("\n## ")[0].strip() if found else ""
