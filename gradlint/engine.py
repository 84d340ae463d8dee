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
from gradlint.findings import NOT_RUN, Finding, Location, ModelReport, Severity, Stage
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
    skipped: list[type[Rule]] = []
    if spec.cannot_run:  # e.g. an ONNX op with no torch equivalent: the static rules still run
        skipped = [r for r in rules if r.needs(Stage.TRACE) or r.needs(Stage.PROBE)]
        rules = [r for r in rules if r not in skipped]
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
    if spec.source_format == "onnx":
        findings = [_onnx_finding(f, spec) for f in findings]
    findings = suppress.apply(findings, spec.path, spec.source_format, rules, settings.suppressions)
    value = risk.combine(findings, ctx.evidence)
    findings = _merge_same_site([_with_severity(f, settings.severities) for f in findings],
                                by_module=spec.source_format == "onnx")
    findings.sort(key=lambda f: (f.location.path, f.location.line, f.location.col, f.code, f.module))
    return ModelReport(
        target=spec.target,
        path=spec.path,
        risk=value,
        level=risk.level(value),
        assumptions=(*spec.assumptions, *observation.assumptions, *_not_run(spec, skipped)),
        findings=tuple(findings),
        causes=risk.top_causes(findings),
        passes=ctx.passes,
        evidence=risk.features(findings, ctx.evidence),
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


def _onnx_finding(finding: Finding, spec: ModelSpec) -> Finding:
    """Name the ONNX node (or name scope) the user knows, and point at the .onnx file: a trace
    op's Python frame is gradlint's own ONNX interpreter. Config-file locations stay."""
    location = finding.location
    if location.path.endswith(".py") or location.path.startswith("<"):
        location = spec.model_location or Location(spec.path)
    return replace(finding, module=spec.node_names.get(finding.module, finding.module), location=location)


def _not_run(spec: ModelSpec, skipped: Sequence[type[Rule]]) -> tuple[str, ...]:
    if not spec.cannot_run:
        return ()
    if not skipped:  # --no-probe, or only static rules selected
        return (f"{NOT_RUN}{spec.cannot_run}",)
    return (f"{NOT_RUN}{spec.cannot_run}; the model cannot run, so {len(skipped)} trace and probe "
            f"rule{'' if len(skipped) == 1 else 's'} did not",)


def _merge_same_site(findings: list[Finding], by_module: bool = False) -> list[Finding]:
    """One finding per rule and construction line: layers built in a loop or comprehension share
    a line, and the fix at that line covers them all. ONNX findings all point at the .onnx file:
    `by_module` keeps one per node."""
    groups: dict[tuple, list[Finding]] = {}
    for finding in findings:
        key = (finding.code, finding.location, finding.module if by_module else "")
        groups.setdefault(key, []).append(finding)
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
    return replace(finding, severity=best[1])
