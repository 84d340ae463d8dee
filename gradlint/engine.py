"""The pipeline, top to bottom: load -> trace -> probe -> rules -> report.

Cheap before expensive: a stage runs only when a selected rule needs it.
"""

from __future__ import annotations

import traceback
from collections.abc import Sequence
from dataclasses import dataclass, replace

from gradlint import risk, suppress
from gradlint.discover import Target
from gradlint.errors import LoadError
from gradlint.findings import Finding, ModelReport, Severity, Stage
from gradlint.rule import Rule, RuleContext
from gradlint.spec import ModelSpec


@dataclass(frozen=True)
class Settings:
    """How to run the checks (independent of which model is checked)."""

    rules: tuple[type[Rule], ...]
    device: str = "cpu"
    seed: int = 0
    probe: bool = True  # False: static rules only (--no-probe)
    thorough: bool = False  # --thorough: rules may spend more passes
    severities: tuple[tuple[str, Severity], ...] = ()  # (code prefix, severity) overrides
    suppressions: suppress.SuppressionConfig = suppress.SuppressionConfig()  # config ignores, --ignore-noqa


def active_rules(settings: Settings) -> list[type[Rule]]:
    """The selected rules that run: all of them, or only static ones under --no-probe."""
    return [r for r in settings.rules if settings.probe or not (r.needs(Stage.TRACE) or r.needs(Stage.PROBE))]


def lint_spec(spec: ModelSpec, settings: Settings) -> ModelReport:
    """Run the selected rules on a loaded model."""
    from gradlint.probe import observe

    rules = active_rules(settings)
    want_probe = any(r.needs(Stage.PROBE) for r in rules)
    want_trace = want_probe or any(r.needs(Stage.TRACE) for r in rules)
    observation = observe(spec, want_trace, want_probe, settings.device, settings.seed)
    ctx = RuleContext(spec=spec, trace=observation.trace, probe=observation.probe, device=settings.device,
                      seed=settings.seed, thorough=settings.thorough, passes=dict(observation.passes))
    findings: list[Finding] = []
    for rule_class in rules:
        try:
            findings.extend(rule_class().check(ctx))
        except Exception as error:
            raise LoadError(f"rule {rule_class.code} failed on this model: {type(error).__name__}: {error}") from error
    if spec.node_names:  # ONNX: name the node the user knows, not the sanitized module path
        findings = [replace(f, module=spec.node_names.get(f.module, f.module)) for f in findings]
    findings = suppress.apply(findings, spec.path, spec.source_format, rules, settings.suppressions)
    value = risk.combine(findings)
    findings = _merge_same_site([_with_severity(f, settings.severities) for f in findings])
    findings.sort(key=lambda f: (f.location.path, f.location.line, f.location.col, f.code, f.module))
    return ModelReport(
        target=spec.target,
        path=spec.path,
        risk=value,
        level=risk.level(value),
        assumptions=(*spec.assumptions, *observation.assumptions),
        findings=tuple(findings),
        causes=risk.top_causes(findings),
        passes=ctx.passes,
    )


def lint_target(target: Target, settings: Settings, overrides, verbose: bool = False) -> ModelReport:
    """Load and lint one target; any failure becomes a one-line error report."""
    from gradlint.load import load_target

    try:
        spec = load_target(target, overrides)
        return lint_spec(spec, settings)
    except LoadError as error:
        if verbose:
            traceback.print_exception(error)
        return ModelReport(target=target.label, path=target.path, error=str(error))
    except Exception as error:  # an internal error must still not hide the other files' results
        if verbose:
            traceback.print_exception(error)
        return ModelReport(target=target.label, path=target.path,
                           error=f"internal error: {type(error).__name__}: {error}")


def _merge_same_site(findings: list[Finding]) -> list[Finding]:
    """One finding per rule and construction line: layers built in a loop or comprehension share
    a line, and the fix at that line covers them all."""
    from dataclasses import replace

    groups: dict[tuple, list[Finding]] = {}
    for finding in findings:
        groups.setdefault((finding.code, finding.location), []).append(finding)
    merged = []
    for group in groups.values():
        worst = max(group, key=lambda f: (f.severity.rank, f.weight))
        if len(group) > 1:
            others = [f.module for f in group if f is not worst and f.module]
            shown = ", ".join(others[:3]) + (", ..." if len(others) > 3 else "")
            worst = replace(worst, message=f"{worst.message} (and {len(group) - 1} more built on this line: {shown})")
        merged.append(worst)
    return merged


def _with_severity(finding: Finding, overrides: Sequence[tuple[str, Severity]]) -> Finding:
    """Apply the most specific severity override whose prefix matches the finding's code."""
    best = None
    for prefix, severity in overrides:
        if finding.code.startswith(prefix) and (best is None or len(prefix) > len(best[0])):
            best = (prefix, severity)
    if best is None:
        return finding
    from dataclasses import replace

    return replace(finding, severity=best[1])
