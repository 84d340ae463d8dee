"""The learning-rate suggestion: the largest lr at which gradlint predicts the run trains.

A stage after the rules (engine.lint_spec). It re-runs only the rules whose verdict depends on
the learning rate (`Rule.reads_lr`: the optimizer rules and the Post-LN depth rule) at candidate
rates, on the measurements the default run already took: the trace, the probe, the Hessian's top
eigenvalue and the optimizer's first step are computed once. The first step of every torch.optim
optimizer from a fresh state is the lr times an lr-free direction (SGD and momentum take lr * g,
Adam(W) lr * m/(sqrt(v) + eps), decoupled weight decay lr * wd * p), so a candidate's first step
is the measured one scaled, exactly. Only the lookahead (`Rule.steps_optimizer`: real optimizer
steps, GL604) must run again, and it runs only to verify a candidate.

A rate is predicted to train when its risk is below LOW_RISK (the border of "low" in risk.LEVELS,
the bar a fix must clear), no rule that reads the lr reports an error there, and, when the
lookahead ran, its loss fell. The search:

1. Screening, cheap: the lr-dependent rules without the lookahead, on a grid a factor of 2 apart
   (a schedule scaled as a whole, its peak by the same factor), from the configured lr up to
   MAX_UP times it or down to MIN_DOWN. The screened rules carry the bounds with a theory behind
   them (lr x curvature against the optimizer's stability bound, the first update against the
   weight's size, the first step's overshoot, Post-LN depth against the lr): the largest candidate
   none of them errs on bounds the answer from above. (The risk alone would not: the calibration
   leans on the lookahead's evidence, and without it a model at 250x its stable lr screens low.)
2. Verification: that candidate with the lookahead too. If it fails, lower ones, at most
   MAX_VERIFICATIONS runs in all: bisection down to a rate known to train (the configured one, when
   gradlint predicts it trains), else steps of 4x.
3. Margin: the suggestion is the largest rate verified, divided by MARGIN, but never below the
   configured lr when that is predicted to train.

Why errors and not warnings, why the progress test and why the margin: on 24 corpus cases trained
at the suggestion (benchmarks/bench_suggest.py; BENCHMARKS.md, "The learning-rate suggestion"),
counting warnings made the suggestion train as often but sit 2-16x below the largest rate that
trains (the curvature bound at initialization is conservative for deep networks); counting errors
only put it at the largest rate that trains, and above it in 4 of 20; the margin brings those back.

Cost: a few forwards per screened candidate (GL603's line search; the other screened rules do
arithmetic on cached numbers), and one lookahead per verification (BENCHMARKS.md, "The
learning-rate suggestion").
"""

from __future__ import annotations

import copy
import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from gradlint import risk, suppress
from gradlint.findings import Finding, Severity, Suggestion
from gradlint.measure.first_step import FirstStep
from gradlint.measure.optimizer import stability_bound
from gradlint.registry import rule_by_code
from gradlint.rule import Rule, RuleContext

LOW_RISK = 0.3
MAX_UP = 2.0 ** 6  # a suggestion is a setting to try, not an extrapolation: 64x at most
MIN_DOWN = 2.0 ** -20
MAX_VERIFICATIONS = 3
MARGIN = 2.0
# Clipping is tried, for a model without it, when the lr would have to fall this far (or no lr
# trains), and the gradient norm is spiky: a recurrent net, or a largest norm CLIP_SPIKE times
# the median over the lookahead's steps.
CLIP_WHEN_BELOW = 4.0
CLIP_SPIKE = 10.0
RECURRENT = frozenset({"RNN", "LSTM", "GRU", "RNNCell", "LSTMCell", "GRUCell"})

# What bounded the suggestion, by the rule whose evidence rose most past it, as the report says it.
BASIS = {"GL601": "first-update size", "GL602": "curvature", "GL603": "first-step overshoot",
         "GL604": "lookahead", "GL402": "Post-LN depth"}


# A verified candidate must make progress in the lookahead: the mean loss over the last
# PROGRESS_WINDOW steps of its longest run below that run's first loss (a rate that bounces
# without diverging stalls training as surely).
PROGRESS_WINDOW = 5


@dataclass(frozen=True)
class _Outcome:
    multiplier: float
    risk: float
    flagged: tuple[str, ...]  # lr-dependent rules with a warning or an error here, strongest first
    contributions: dict  # rule code -> its share of the risk's logit at this multiplier
    progress: bool = True  # the lookahead's loss fell (verified candidates only)

    @property
    def trains(self) -> bool:
        return self.risk < LOW_RISK and not self.flagged and self.progress


class _Candidates:
    """The risk at lr multipliers, screened (no lookahead) or verified (with it), cached."""

    def __init__(self, ctx: RuleContext, rules: Sequence[type[Rule]], findings: Sequence[Finding],
                 recorded: dict[str, str], check: Callable, path: str, source_format: str,
                 suppressions: suppress.SuppressionConfig) -> None:
        self.ctx = ctx
        self.lr_rules = [r for r in rules if r.reads_lr]
        self.clip_rules = [r for r in rules if r.reads_lr or r.reads_clip]
        self.codes = {r.code for r in self.lr_rules}
        self.findings, self.recorded = list(findings), recorded
        self.check = check
        self.path, self.source_format, self.suppressions = path, source_format, suppressions
        self.cache: dict[tuple[float, bool, float | None], _Outcome] = {}

    def at(self, multiplier: float, verify: bool, clip: float | None = None) -> _Outcome:
        key = (multiplier, verify, clip)
        if key not in self.cache:
            self.cache[key] = self._evaluate(multiplier, verify, clip)
        return self.cache[key]

    def _evaluate(self, multiplier: float, verify: bool, clip: float | None) -> _Outcome:
        rules = self.lr_rules if clip is None else self.clip_rules
        codes = {r.code for r in rules}
        # What stays the same: the other rules' findings and recorded evidence.
        fixed_findings = [f for f in self.findings if f.code not in codes]
        fixed_evidence = {k: v for k, v in self.ctx.evidence.items() if self.recorded.get(k) not in codes}
        ctx = _scaled_context(self.ctx, multiplier, fixed_evidence, clip)
        found: dict = {}
        recorded: dict[str, str] = {}
        for rule_class in rules:
            if verify or not rule_class.steps_optimizer:
                self.check(rule_class, ctx, found, [], recorded)
        ran = [r for r in rules if r in found]
        new = suppress.apply([f for r in ran for f in found[r]], self.path, self.source_format, ran,
                             self.suppressions)
        new = [f for f in new if f.code in codes]
        value = risk.combine([*fixed_findings, *new], ctx.evidence)
        return _Outcome(multiplier, value, _flagged(new), _contributions(new, ctx.evidence, recorded),
                        progress=_progress(ctx))


def suggest(ctx: RuleContext, rules: Sequence[type[Rule]], findings: Sequence[Finding], base_risk: float,
            recorded: dict[str, str], check: Callable, path: str, source_format: str,
            suppressions: suppress.SuppressionConfig) -> Suggestion | None:
    """The suggestion for a model whose rules ran (`findings`, after suppression, with `base_risk`),
    or None when there is nothing to scale (no optimizer, an lr of 0) or no selected rule reads
    the lr. `recorded` maps each evidence key to the rule that recorded it; `check` runs one rule
    as the engine does."""
    info = ctx.spec.optimizer
    if info is None or info.checked_lr <= 0 or not any(r.reads_lr for r in rules):
        return None
    candidates = _Candidates(ctx, rules, findings, recorded, check, path, source_format, suppressions)
    base = _Outcome(1.0, base_risk, _flagged([f for f in findings if f.code in candidates.codes]), {})
    screened = _screen(candidates, base.trains)
    if screened is None:
        return _suggestion(ctx, None, None, "the risk does not fall with the lr: its causes lie elsewhere")
    multiplier, above = screened
    verified, failed = _verify(candidates, multiplier, base, _curvature_limit(ctx))
    if verified is None:
        clipped = _clipped(candidates, ctx)
        if clipped is not None:
            return clipped
        return _suggestion(ctx, None, None,
                           f"no lr down to {_lr_text(info.checked_lr * min(failed))} trains in the lookahead")
    if verified.multiplier < multiplier:  # the lookahead, not the screened rules, set the bound
        basis = "lookahead"
    elif above is None:
        basis = f"search limit ({MAX_UP:g}x the configured lr)"
    else:
        basis = _basis(above)
    if info.peak_lr is not None:
        basis += ", at the schedule's peak"
    margin = verified.multiplier / MARGIN
    if base.trains:
        margin = max(margin, 1.0)
    if margin <= 1 / CLIP_WHEN_BELOW:
        clipped = _clipped(candidates, ctx)
        if clipped is not None:
            return clipped
    return _suggestion(ctx, margin, verified.risk, basis)


def _clipped(candidates: _Candidates, ctx: RuleContext) -> Suggestion | None:
    """The configured lr with gradient clipping, when clipping is what keeps such a run stable and
    the lookahead verifies it: a model without clipping whose gradient norm is spiky (a recurrent
    net, whose gradient through time can grow by orders of magnitude, or a lookahead whose largest
    norm before any divergence is CLIP_SPIKE times its median). The clip is the median gradient
    norm over the configured lr's first lookahead steps, the size a typical step keeps."""
    if ctx.spec.gradient_clip_val:
        return None
    norms = _first_norms(ctx)
    if not norms:
        return None
    typical = statistics.median(norms)
    spiky = _is_recurrent(ctx.model) or max(norms) >= CLIP_SPIKE * typical
    if not spiky or not (math.isfinite(typical) and typical > 0):
        return None
    clip = float(f"{typical:.2g}")
    outcome = candidates.at(1.0, verify=True, clip=clip)
    if not outcome.trains:
        return None
    info = ctx.spec.optimizer
    return Suggestion(lr=info.checked_lr, configured_lr=info.checked_lr, gradient_clip_val=clip, risk=outcome.risk,
                      basis="clipping keeps the configured lr", clip_suggested=True)


def _first_norms(ctx: RuleContext) -> list[float]:
    """The finite gradient norms of the configured lr's lookahead runs, up to their first
    non-finite one."""
    norms = []
    for key, run in ctx.shared.items():
        if isinstance(key, tuple) and key[0] == "lookahead":
            for value in run.grads:
                if not math.isfinite(value):
                    break
                norms.append(value)
    return norms


def _is_recurrent(model) -> bool:
    return any(type(module).__name__ in RECURRENT for module in model.modules())


def _screen(candidates: _Candidates, configured_trains: bool) -> tuple[float, _Outcome | None] | None:
    """(the largest multiplier on the grid screened under LOW_RISK, the outcome a step above it;
    None for that outcome when the search limit stopped the climb), or None when even MIN_DOWN
    screens at or above LOW_RISK."""
    if configured_trains or candidates.at(1.0, verify=False).trains:
        good = 1.0
        while good < MAX_UP:
            above = candidates.at(good * 2, verify=False)
            if not above.trains:
                return good, above
            good *= 2
        return good, None
    bad = 1.0
    while bad / 2 >= MIN_DOWN:
        if candidates.at(bad / 2, verify=False).trains:
            return bad / 2, candidates.at(bad, verify=False)
        bad /= 2
    return None


def _curvature_limit(ctx: RuleContext) -> float | None:
    """The grid multiplier at or under the quadratic stability limit, lr < bound / lambda_max, when
    GL602 measured the top eigenvalue (SGD-family optimizers); None otherwise."""
    values = [v for key, v in ctx.shared.items() if isinstance(key, tuple) and key[0] == "top_eigenvalue"
              and isinstance(v, float) and math.isfinite(v) and v > 0]
    info = ctx.spec.optimizer
    if not values or info.checked_lr <= 0:
        return None
    limit = stability_bound(info) / max(values) / info.checked_lr
    return 2.0 ** math.floor(math.log2(limit)) if limit > 0 else None


def _verify(candidates: _Candidates, multiplier: float, base: _Outcome,
            curvature: float | None = None) -> tuple[_Outcome | None, list[float]]:
    """The largest grid multiplier at or below `multiplier` that trains, lookahead included, found
    by bisection in log space within MAX_VERIFICATIONS lookaheads (the configured lr counts as
    verified when the default run found it trains; with nothing known to train, a failure steps 4x
    down, or to the quadratic stability limit `curvature` when that is lower); and the multipliers
    that failed."""
    good = base if base.trains else None
    if good is not None and multiplier <= 1.0:
        return good, []
    bad: float | None = None
    failed: list[float] = []
    candidate = multiplier
    for _ in range(MAX_VERIFICATIONS):
        outcome = candidates.at(candidate, verify=True)
        if outcome.trains:
            good = outcome
        else:
            bad = candidate
            failed.append(candidate)
        if bad is None:  # the screened bound itself trains: nothing above it screens low
            break
        if good is None:
            candidate = bad / 4 if curvature is None else min(bad / 4, curvature)
            if candidate < MIN_DOWN:
                break
        else:
            candidate = 2.0 ** math.floor((math.log2(good.multiplier) + math.log2(bad)) / 2)
            if candidate <= good.multiplier:
                break
    return good, failed


def _scaled_context(ctx: RuleContext, multiplier: float, evidence: dict, clip: float | None = None) -> RuleContext:
    """The rule context of the same model trained at `multiplier` times its lr (its schedule
    too), and with gradients clipped at `clip` when given, starting from the lr-free `evidence`:
    the lr-free measurements shared, the first step scaled (measured again under a new clip),
    nothing lr-dependent kept."""
    spec = ctx.spec
    info = spec.optimizer
    scaled_info = replace(info, lr=info.lr * multiplier,
                          peak_lr=None if info.peak_lr is None else info.peak_lr * multiplier)
    scaled_spec = replace(spec, optimizer=scaled_info,
                          optimizer_object=_scaled_optimizer(spec.optimizer_object, multiplier))
    if clip is not None:
        scaled_spec = replace(scaled_spec, gradient_clip_val=clip)
    shared = {key: value for key, value in ctx.shared.items() if not _lr_dependent(key)}
    step = ctx.shared.get("first_step")
    if step is not None and clip is None:
        shared["first_step"] = _scaled_step(step, multiplier)
    return RuleContext(spec=scaled_spec, trace=ctx.trace, probe=ctx.probe, device=ctx.device, seed=ctx.seed,
                       thorough=ctx.thorough, passes=ctx.passes, shared=shared, evidence=dict(evidence), notes={})


def _lr_dependent(key) -> bool:
    """Cache entries a different lr changes: the first step (replaced by a scaled copy) and the
    lookahead runs. The eigenvalue, the trace views and the optimizer's site do not change."""
    name = key[0] if isinstance(key, tuple) else key
    return name in ("first_step", "lookahead")


def _scaled_optimizer(optimizer, multiplier: float):
    """A shallow copy of the user's optimizer whose param groups have `multiplier` times their lr;
    the user's object, its state and its groups are left as they are."""
    if optimizer is None:
        return None
    twin = copy.copy(optimizer)
    twin.param_groups = [dict(group, lr=group["lr"] * multiplier) for group in optimizer.param_groups]
    return twin


def _scaled_step(step: FirstStep, multiplier: float) -> FirstStep:
    tensors = tuple(replace(t, update_rms=t.update_rms * multiplier, update_sq=t.update_sq * multiplier ** 2,
                            dot=t.dot * multiplier) for t in step.tensors)
    update = None if step.update is None else tuple(u * multiplier for u in step.update)
    return replace(step, tensors=tensors, update=update)


def _contributions(findings: Sequence[Finding], evidence: dict, recorded: dict[str, str]) -> dict[str, float]:
    """Each lr-dependent rule's share of the risk's logit: its findings' hazard under its family's
    weight, and its recorded measurements under theirs (noisy-OR weights of 1 without a calibration)."""
    model = risk.shipped_model()
    weights = model["weights"] if model is not None else {}
    shares: dict[str, float] = {}
    for finding in findings:
        shares[finding.code] = max(shares.get(finding.code, 0.0), risk.hazard(finding.weight))
    for code in list(shares):
        shares[code] *= weights.get(_family(code), 1.0) if model is not None else 1.0
    for key, code in recorded.items():
        shares[code] = shares.get(code, 0.0) + weights.get(f"m:{key}", 0.0) * evidence.get(key, 0.0)
    return shares


def _family(code: str) -> str:
    rule = rule_by_code(code)
    return rule.family if rule is not None else code[:3]


def _progress(ctx: RuleContext) -> bool:
    """Whether the candidate's longest lookahead run lowered its loss (True when none ran). The
    longest: 20 steps on a repeated batch can leave a recurrent net's loss flat where 60 steps
    on resampled rows, like training, already lower it."""
    runs = [value for key, value in ctx.shared.items() if isinstance(key, tuple) and key[0] == "lookahead"]
    runs = [run for run in runs if run.losses]
    if not runs:
        return True
    losses = max(runs, key=lambda run: run.asked_steps).losses
    tail = losses[-PROGRESS_WINDOW:]
    return all(math.isfinite(v) for v in tail) and sum(tail) / len(tail) < losses[0]


def _flagged(findings: Sequence[Finding]) -> tuple[str, ...]:
    """The codes of the errors among `findings`, the strongest first."""
    serious = [f for f in findings if f.severity == Severity.ERROR]
    serious.sort(key=lambda f: -f.weight)
    return tuple(dict.fromkeys(f.code for f in serious))


def _basis(outcome: _Outcome) -> str:
    """What stopped the screening a step above the suggestion: the strongest rule that flagged
    it, else the rule that added most to its risk."""
    if outcome.flagged:
        code = outcome.flagged[0]
    elif outcome.contributions:
        code = max(outcome.contributions, key=outcome.contributions.get)
    else:
        return "lookahead"
    return BASIS.get(code, code)


def _suggestion(ctx: RuleContext, multiplier: float | None, value: float | None, basis: str) -> Suggestion:
    info = ctx.spec.optimizer
    return Suggestion(lr=None if multiplier is None else info.checked_lr * multiplier,
                      configured_lr=info.checked_lr, gradient_clip_val=ctx.spec.gradient_clip_val,
                      risk=value, basis=basis)


def _lr_text(lr: float) -> str:
    return f"{lr:.2g}"
