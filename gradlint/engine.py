"""The pipeline, top to bottom: load -> static rules -> trace -> probe -> trace and probe rules -> report.

Cheap before expensive: a stage runs only when a selected rule needs it, and a model whose
forward or backward fails still gets its static rules' findings (with the error, and no risk).
A rule that raises does not cost the model its report: the failure becomes a GL902 finding and
the risk says it is incomplete; a rule that runs out of memory is skipped and named likewise.
"""

from __future__ import annotations

import gc
import traceback
from collections.abc import Sequence
from dataclasses import dataclass, replace

from gradlint import risk, stages, suggest, suppress
from gradlint.discover import Target
from gradlint.errors import LoadError, NoModel
from gradlint.findings import NOT_RUN, Finding, Location, ModelReport, Severity, Stage
from gradlint.load import importable, load_target
from gradlint.measure.export import measurements
from gradlint.probe import observe
from gradlint.registry import all_rules, rule_by_code
from gradlint.rule import Rule, RuleContext
from gradlint.spec import ModelSpec

RULE_FAILED_CODE, RULE_FAILED_NAME = "GL902", "rule-failed"


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
    suggest_lr: bool = True  # the learning-rate suggestion (gradlint.suggest), for models with a complete risk


def active_rules(settings: Settings) -> list[type[Rule]]:
    """The selected rules that run: all of them, or only static ones under --no-probe."""
    return [r for r in settings.rules if settings.probe or not _runs_model(r)]


class ModelFailed(LoadError):
    """The model loaded but failed to run (its forward or backward raised): only the static rules
    ran. `report` holds their findings, with this error as its `error` and no risk."""

    def __init__(self, report: ModelReport) -> None:
        super().__init__(report.error)
        self.report = report


@dataclass(frozen=True)
class RuleFailure:
    """A rule that raised on this model (`out_of_memory`: it could not allocate what it needed)."""

    rule: type[Rule]
    error: str
    out_of_memory: bool

    def describe(self) -> str:
        return f"{self.rule.code} out of memory" if self.out_of_memory else f"{self.rule.code} failed"


def lint_spec(spec: ModelSpec, settings: Settings) -> ModelReport:
    """Run the selected rules on a loaded model: the static rules first, then, when a selected
    rule needs them, one recorded forward (trace) or forward+backward (probe) and the rules
    that read it. Raises ModelFailed (a LoadError) when that pass fails; its `report` keeps
    what the static rules found."""
    rules = active_rules(settings)
    static = [r for r in rules if not _runs_model(r)]
    dynamic = [r for r in rules if _runs_model(r)]
    # One context per model: the trace and probe rules see the static rules' shared
    # measurements, evidence and passes, so the risk weighs both stages' evidence.
    ctx = RuleContext(spec=spec, device=settings.device, seed=settings.seed, thorough=settings.thorough)
    found: dict[type[Rule], list[Finding]] = {}
    failures: list[RuleFailure] = []
    recorded: dict[str, str] = {}  # evidence key -> the rule that recorded it (the suggestion re-runs some)
    for rule_class in static:
        _check(rule_class, ctx, found, failures, recorded)
    skipped: list[type[Rule]] = []
    assumptions: tuple[str, ...] = ()
    failure: LoadError | None = None
    measured = None
    if dynamic and spec.cannot_run:  # e.g. an ONNX op with no torch equivalent: the static rules still run
        skipped = dynamic
    elif dynamic:
        import torch

        want_probe = any(r.needs(Stage.PROBE) for r in dynamic)
        stages.enter("the probe's forward and backward pass" if want_probe else "the traced forward pass")
        # Training computes gradients: a model file that switched autograd off at import would
        # otherwise fail every rule that steps the model.
        with torch.enable_grad():
            try:
                observation = observe(spec, True, want_probe, settings.device, settings.seed)
            except LoadError as error:
                failure, skipped = error, dynamic
            else:
                for stage, count in observation.passes.items():
                    ctx.passes[stage] = ctx.passes.get(stage, 0) + count
                assumptions = observation.assumptions
                ctx = replace(ctx, trace=observation.trace, probe=observation.probe)  # shares the dicts
                for rule_class in dynamic:
                    _check(rule_class, ctx, found, failures, recorded)
                measured = measurements(ctx)  # read from what the rules measured: runs nothing
    stages.enter("reporting")
    ran = [r for r in rules if r in found]
    findings = [f for rule_class in ran for f in found[rule_class]]  # in selection order, as one pass made them
    if any(r.code == RULE_FAILED_CODE for r in rules):
        findings += _failure_findings([f for f in failures if not f.out_of_memory], spec)
    if spec.source_format == "onnx":
        findings = [_onnx_finding(f, spec) for f in findings]
    findings = suppress.apply(findings, spec.path, spec.source_format, ran, settings.suppressions)
    ran_model = bool(dynamic) and not skipped
    value = risk.combine(findings, ctx.evidence) if ran_model else None
    gaps = _risk_gaps(settings, failures, ctx) if value is not None else ()
    suggestion = None
    if value is not None and not gaps and settings.suggest_lr:  # a suggestion needs the whole risk
        stages.enter("the learning-rate suggestion")
        try:
            with torch.enable_grad():
                suggestion = suggest.suggest(ctx, ran, findings, value, recorded, _check, spec.path,
                                             spec.source_format, settings.suppressions)
        except Exception as error:  # the report stands without it (a rule's own failures are caught in _check)
            if _is_out_of_memory(error):
                gc.collect()
            ctx.note("suggestion", f"no lr suggestion: {_one_line(f'{type(error).__name__}: {error}')}")
    findings = _merge_same_site([_with_severity(f, settings.severities) for f in findings],
                                by_module=spec.source_format == "onnx")
    findings.sort(key=lambda f: (f.location.path, f.location.line, f.location.col, f.code, f.module))
    report = ModelReport(
        target=spec.target,
        path=spec.path,
        risk=value,
        level=None if value is None else risk.level(value),
        assumptions=(*spec.assumptions, *assumptions, *ctx.notes.values(), *_not_run(spec, skipped, failure),
                     *_failure_notes(failures, reported=any(r.code == RULE_FAILED_CODE for r in rules))),
        findings=tuple(findings),
        causes=risk.top_causes(findings),
        passes=ctx.passes,
        evidence=risk.features(findings, ctx.evidence),
        error=None if failure is None else str(failure),
        incomplete=gaps if value is not None else (_no_risk_reason(settings, spec, failure),),
        location=spec.model_location,
        linted=True,
        suggestion=suggestion,
        measurements=measured,
    )
    if failure is not None:
        raise ModelFailed(report) from failure
    return report


def _risk_gaps(settings: Settings, failures: Sequence[RuleFailure], ctx: RuleContext) -> tuple[str, ...]:
    """What the risk could not weigh, though the model ran: rules it was fitted with that were not
    selected, that failed or ran out of memory, and probes skipped for the model's size."""
    weighed = [r for r in all_rules() if risk.weighs(r)]
    unselected = [r for r in weighed if r not in settings.rules]
    gaps = [f"{len(unselected)} of {len(weighed)} rules not selected"] if unselected else []
    gaps += [f.describe() for f in failures if risk.weighs(f.rule)]
    gaps += [f"{what} skipped for size" for what in ctx.shared.get("lean.skipped", ())]
    return tuple(gaps)


def _no_risk_reason(settings: Settings, spec: ModelSpec, failure: LoadError | None) -> str:
    """Why the model has no risk: the risk is fitted on what running the model shows."""
    if failure is not None:
        return "the model failed to run"
    if spec.cannot_run:
        return "the model cannot run"
    if not settings.probe:
        return "--no-probe: the risk needs the model to run"
    return "no selected rule runs the model"


def lint_target(target: Target, settings: Settings, overrides, verbose: bool = False) -> ModelReport:
    """Load and lint one target; a failure to load becomes a one-line error report, a model that
    fails to run a report of the static rules' findings with the error."""
    if target.error is not None:
        return ModelReport(target=target.label, path=target.path, error=target.error)
    try:
        with importable(target):
            return lint_spec(load_target(target, overrides), settings)
    except ModelFailed as failure:
        if verbose:
            traceback.print_exception(failure)
        return failure.report
    except NoModel as nothing:
        return ModelReport(target=target.label, path=target.path, skipped=str(nothing))
    except LoadError as error:
        if verbose:
            traceback.print_exception(error)
        return ModelReport(target=target.label, path=target.path, error=_one_line(str(error)))
    except Exception as error:  # an internal error must still not hide the other files' results
        if verbose:
            traceback.print_exception(error)
        return ModelReport(target=target.label, path=target.path,
                           error=_one_line(f"internal error: {type(error).__name__}: {error}"))


def _runs_model(rule_class: type[Rule]) -> bool:
    """Whether the rule reads the trace or the probe, which run the model."""
    return rule_class.needs(Stage.TRACE) or rule_class.needs(Stage.PROBE)


def _check(rule_class: type[Rule], ctx: RuleContext, found: dict, failures: list[RuleFailure],
           recorded: dict[str, str]) -> None:
    """Run one rule into `found`; a rule that raises goes to `failures` instead, so the model keeps
    the other rules' findings and its risk. SystemExit and KeyboardInterrupt from user code that
    a rule calls (a forward pass) are not caught: they end the target, as their callers meant.
    `recorded` learns which evidence keys the rule recorded or raised."""
    stages.enter(f"rule {rule_class.code}")
    before = dict(ctx.evidence)
    try:
        found[rule_class] = list(rule_class().check(ctx))
    except Exception as error:
        out_of_memory = _is_out_of_memory(error)
        if out_of_memory:
            gc.collect()  # whatever the rule held is garbage now: give it back before the next rule
        failures.append(RuleFailure(rule_class, _one_line(f"{type(error).__name__}: {error}"), out_of_memory))
    finally:
        recorded.update({key: rule_class.code for key, value in ctx.evidence.items() if before.get(key) != value})


def _is_out_of_memory(error: BaseException) -> bool:
    """An allocation that failed: Python's MemoryError, torch's OutOfMemoryError (CUDA), or the
    RuntimeError torch's CPU allocator raises ("DefaultCPUAllocator: can't allocate memory")."""
    if isinstance(error, MemoryError) or type(error).__name__ == "OutOfMemoryError":
        return True
    return isinstance(error, RuntimeError) and "can't allocate memory" in str(error)


def _failure_notes(failures: Sequence[RuleFailure], reported: bool) -> list[str]:
    """Rules skipped for memory, and failed rules when no GL902 finding reports them."""
    return [f"rule {f.rule.code} skipped: out of memory ({f.error})" if f.out_of_memory
            else f"rule {f.rule.code} failed: {f.error}" for f in failures if f.out_of_memory or not reported]


def _failure_findings(failures: Sequence[RuleFailure], spec: ModelSpec) -> list[Finding]:
    """One GL902 finding per distinct error, naming the rules it stopped (model code that raises
    when a rule reads it usually stops several rules the same way)."""
    rule = rule_by_code(RULE_FAILED_CODE)
    location = spec.model_location or Location(spec.path)
    by_error: dict[str, list[type[Rule]]] = {}
    for failure in failures:
        by_error.setdefault(failure.error, []).append(failure.rule)
    findings = []
    for error, failed in by_error.items():
        names = ", ".join(f"{r.code} ({r.name})" for r in failed)
        subject = f"rule {names} could not" if len(failed) == 1 else f"{len(failed)} rules could not"
        detail = "" if len(failed) == 1 else f" ({', '.join(r.code for r in failed)})"
        findings.append(Finding(
            code=RULE_FAILED_CODE, name=RULE_FAILED_NAME, severity=rule.severity if rule else Severity.WARNING,
            message=f"{subject} run on this model{detail}: {error}", location=location, module=""))
    return findings


def _one_line(text: str) -> str:
    """The first line of a message, saying how many more there were (-v shows the traceback)."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()] or [""]
    more = len(lines) - 1
    return lines[0] + (f" (+{more} more line{'' if more == 1 else 's'})" if more else "")


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
