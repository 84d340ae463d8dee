"""The pipeline, top to bottom: load -> static rules -> trace -> probe -> trace and probe rules -> report.

Cheap before expensive: a stage runs only when a selected rule needs it, and a model whose
forward or backward fails still gets its static rules' findings (with the error).
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
    return [r for r in settings.rules if settings.probe or not _runs_model(r)]


class ModelFailed(LoadError):
    """The model loaded but failed to run (its forward or backward raised): only the static rules
    ran. `report` holds their findings and risk, with this error as its `error`."""

    def __init__(self, report: ModelReport) -> None:
        super().__init__(report.error)
        self.report = report


def lint_spec(spec: ModelSpec, settings: Settings) -> ModelReport:
    """Run the selected rules on a loaded model: the static rules first, then, when a selected
    rule needs them, one recorded forward (trace) or forward+backward (probe) and the rules
    that read it. Raises ModelFailed (a LoadError) when that pass fails; its `report` keeps
    what the static rules found."""
    from gradlint.probe import observe

    rules = active_rules(settings)
    static = [r for r in rules if not _runs_model(r)]
    dynamic = [r for r in rules if _runs_model(r)]
    # One context per model: the trace and probe rules see the static rules' shared
    # measurements, evidence and passes, so the risk weighs both stages' evidence.
    ctx = RuleContext(spec=spec, device=settings.device, seed=settings.seed, thorough=settings.thorough)
    found = {rule_class: _check(rule_class, ctx) for rule_class in static}
    skipped: list[type[Rule]] = []
    assumptions: tuple[str, ...] = ()
    failure: LoadError | None = None
    if dynamic and spec.cannot_run:  # e.g. an ONNX op with no torch equivalent: the static rules still run
        skipped = dynamic
    elif dynamic:
        want_probe = any(r.needs(Stage.PROBE) for r in dynamic)
        try:
            observation = observe(spec, True, want_probe, settings.device, settings.seed)
        except LoadError as error:
            failure, skipped = error, dynamic
        else:
            for stage, count in observation.passes.items():
                ctx.passes[stage] = ctx.passes.get(stage, 0) + count
            assumptions = observation.assumptions
            observed = replace(ctx, trace=observation.trace, probe=observation.probe)  # shares the dicts
            found.update({rule_class: _check(rule_class, observed) for rule_class in dynamic})
    ran = [r for r in rules if r in found]
    findings = [f for rule_class in ran for f in found[rule_class]]  # in selection order, as one pass made them
    if spec.source_format == "onnx":
        findings = [_onnx_finding(f, spec) for f in findings]
    findings = suppress.apply(findings, spec.path, spec.source_format, ran, settings.suppressions)
    value = risk.combine(findings, ctx.evidence)
    findings = _merge_same_site([_with_severity(f, settings.severities) for f in findings],
                                by_module=spec.source_format == "onnx")
    findings.sort(key=lambda f: (f.location.path, f.location.line, f.location.col, f.code, f.module))
    report = ModelReport(
        target=spec.target,
        path=spec.path,
        risk=value,
        level=risk.level(value),
        assumptions=(*spec.assumptions, *assumptions, *ctx.notes.values(), *_not_run(spec, skipped, failure)),
        findings=tuple(findings),
        causes=risk.top_causes(findings),
        passes=ctx.passes,
        evidence=risk.features(findings, ctx.evidence),
        error=None if failure is None else str(failure),
    )
    if failure is not None:
        raise ModelFailed(report) from failure
    return report


def lint_target(target: Target, settings: Settings, overrides, verbose: bool = False) -> ModelReport:
    """Load and lint one target; a failure to load becomes a one-line error report, a model that
    fails to run a report of the static rules' findings with the error."""
    from gradlint.load import load_target

    try:
        spec = load_target(target, overrides)
        return lint_spec(spec, settings)
    except ModelFailed as failure:
        if verbose:
            traceback.print_exception(failure)
        return failure.report
    except LoadError as error:
        if verbose:
            traceback.print_exception(error)
        return ModelReport(target=target.label, path=target.path, error=str(error))
    except Exception as error:  # an internal error must still not hide the other files' results
        if verbose:
            traceback.print_exception(error)
        return ModelReport(target=target.label, path=target.path,
                           error=f"internal error: {type(error).__name__}: {error}")


def _runs_model(rule_class: type[Rule]) -> bool:
    """Whether the rule reads the trace or the probe, which run the model."""
    return rule_class.needs(Stage.TRACE) or rule_class.needs(Stage.PROBE)


def _check(rule_class: type[Rule], ctx: RuleContext) -> list[Finding]:
    try:
        return list(rule_class().check(ctx))
    except Exception as error:
        raise LoadError(f"rule {rule_class.code} failed on this model: {type(error).__name__}: {error}") from error


def _onnx_finding(finding: Finding, spec: ModelSpec) -> Finding:
    """Name the ONNX node (or name scope) the user knows, and point at the .onnx file: a trace
    op's Python frame is gradlint's own ONNX interpreter. Config-file locations stay."""
    location = finding.location
    if location.path.endswith(".py") or location.path.startswith("<"):
        location = spec.model_location or Location(spec.path)
    return replace(finding, module=spec.node_names.get(finding.module, finding.module), location=location)


def _not_run(spec: ModelSpec, skipped: Sequence[type[Rule]], failure: LoadError | None = None) -> tuple[str, ...]:
    rules = f"{len(skipped)} trace and probe rule{'' if len(skipped) == 1 else 's'}"
    if failure is not None:  # the error itself is the report's `error`
        return (f"{NOT_RUN}the model failed to run, so {rules} did not",)
    if not spec.cannot_run:
        return ()
    if not skipped:  # --no-probe, or only static rules selected
        return (f"{NOT_RUN}{spec.cannot_run}",)
    return (f"{NOT_RUN}{spec.cannot_run}; the model cannot run, so {rules} did not",)


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
