"""What the optimizer rules read about the optimizer: its first step on the example batch (once per
model), per-tensor update ratios, how its lr is named and printed, and where it was constructed
(the line an lr fix rewrites)."""

from __future__ import annotations

import ast
import math
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from gradlint.findings import Location
from gradlint.locations import display_path
from gradlint.measure.first_step import first_step
from gradlint.measure.surface import loss_surface
from gradlint.optimizers import UnsupportedOptimizer
from gradlint.trace import ACTIVATIONS, RELU_LIKE

if TYPE_CHECKING:
    from gradlint.rule import RuleContext


def first_step_of(ctx: RuleContext) -> Any:
    """The optimizer's first update on the example batch (first_step.FirstStep), with
    gradient_clip_val applied; None when the optimizer cannot be stepped outside training or
    the loss is not finite (the probe rules report that). Computed once per model and run,
    shared by GL601, GL602 and GL603. For a large model (ctx.lean) the step keeps per-tensor
    numbers only, not the gradient and update vectors."""
    return ctx.measure("optimizer.first_step", lambda: _first_step(ctx))


def _first_step(ctx: RuleContext) -> Any:
    step = None
    with loss_surface(ctx.spec, ctx.device, ctx.seed) as surface:
        try:
            step = first_step(surface, ctx.spec.optimizer_object, ctx.spec.optimizer, ctx.spec.gradient_clip_val,
                              lean=ctx.lean)
        except UnsupportedOptimizer:
            step = None
        finally:
            ctx.count_passes(**surface.passes)
    if step is not None and not math.isfinite(step.loss):
        step = None
    return step


@dataclass(frozen=True)
class UpdateRatio:
    """||update|| / ||W|| for one weight tensor after the first optimizer step."""

    name: str  # parameter path, e.g. "encoder.layers.0.linear1.weight"
    module: str  # its module's path
    ratio: float
    update_rms: float
    weight_rms: float  # what the update is measured against: the weight's RMS, or its branch's scale
    # The weight starts below its residual branch's scale (measure.scale): weight_rms is the RMS it
    # would have at that scale, and `initial_rms` its own.
    initial_rms: float | None = None


# Below this RMS a tensor counts as zero-initialized (ReZero/SkipInit scalars, Fixup's zeroed
# last layers, zero-init heads): any update is infinite relative to it, by design.
ZERO_INIT_RMS = 1e-8


def first_update_ratios(step: Any, scale_invariant: frozenset = frozenset(),
                        branch_scale: dict | None = None) -> list[UpdateRatio]:
    """Per weight tensor (2-D and up), the size of the first update relative to the weight.

    Biases, norm gains and scalars are left out: they start at 0 or 1 by design and their
    relative update says nothing about the layer's stability (the exemptions of docs/theory.md D3).

    A zero-initialized weight has no ratio either. ||u|| / ||W|| asks whether the step rewrites
    the layer's initialization, and a zero weight has none to rewrite: Fixup, ReZero and SkipInit
    start a residual branch's last layer (or gain) at zero so that the branch grows from nothing,
    and they train fine. How far that first step moves the network's output is what GL603 and
    GL604 measure. For the same reason a weight that starts below its residual branch's scale
    (GPT-2's 1/sqrt(2 n_layer) output projections; `branch_scale`, parameter name -> the RMS at
    the branch's scale, from measure.scale) is measured against that scale.

    Weights in `scale_invariant` (parameter names, measure.scale) have no ratio: a normalization
    after them divides their norm out, so an update large against the weight turns it and grows
    it, and cannot blow the network up.

    The other way round, a weight whose first update is zero has ratio 0: it does not move on
    this step. That is the first layer of such a branch (the zero weight after it blocks its
    gradient until the first step has made it non-zero), or a tensor the optimizer does not
    hold (a frozen backbone). A tensor holding NaN or Inf, in the weight or in its update, has
    no ratio: GL501 reports the non-finite values, and no lr makes such an update small."""
    ratios = []
    for tensor in step.tensors:
        if tensor.dim < 2 or not (math.isfinite(tensor.weight_rms) and math.isfinite(tensor.update_rms)) \
                or tensor.weight_rms < ZERO_INIT_RMS or tensor.name in scale_invariant:
            continue
        reference = (branch_scale or {}).get(tensor.name)
        scaled = reference is not None and reference > tensor.weight_rms
        against = reference if scaled else tensor.weight_rms
        ratios.append(UpdateRatio(tensor.name, tensor.name.rpartition(".")[0], tensor.update_rms / against,
                                  tensor.update_rms, against, tensor.weight_rms if scaled else None))
    return sorted(ratios, key=lambda r: -r.ratio)


def clipping_note(ctx: RuleContext, step: Any) -> str:
    """How gradient_clip_val changed the first step, for the finding's message."""
    clip = ctx.spec.gradient_clip_val
    if not clip:
        return ""
    if ctx.spec.optimizer.is_adaptive:
        return (f"; gradient_clip_val={clip:g} does not shrink it: {ctx.spec.optimizer.name} divides the gradient "
                "by its own magnitude")
    if step.clip_scale < 1.0:
        return (f"; gradient_clip_val={clip:g} already scales this gradient (norm {step.grad_norm:.3g}) "
                f"by {step.clip_scale:.3g}")
    return f"; gradient_clip_val={clip:g} does not bind (gradient norm {step.grad_norm:.3g})"


def assumed_optimizer(ctx: RuleContext) -> str:
    """What a finding about the optimizer adds when the optimizer is gradlint's default (the file
    has no configure_optimizers): the measurement is of an optimizer the file never chose, and
    the finding points at the model's factory or class, not at an optimizer's construction."""
    optimizer = ctx.spec.optimizer
    return "; the optimizer is assumed (no configure_optimizers)" if optimizer is not None and optimizer.assumed else ""


# Untuned linear warmup for Adam-type optimizers: 2 / (1 - beta2) steps (Ma & Yarats 2019,
# arXiv:1910.04209; docs/theory.md D6): 2000 for beta2 = 0.999.
WARMUP_FACTOR = 2


# How long a rise to the peak must be to count as a warmup for optimizers without Adam's moment
# estimates: the "first few hundred steps" warmup_hint proposes to them, at its short end.
MIN_WARMUP_STEPS = 100


def warmup_steps(optimizer: Any) -> float:
    """The warmup an optimizer needs: 2 / (1 - beta2) steps for Adam-type optimizers, whose
    second-moment estimate averages over ~1 / (1 - beta2) steps and is noisy before (Ma & Yarats
    2019); MIN_WARMUP_STEPS for the others."""
    if optimizer.betas and optimizer.betas[1] < 1:
        return WARMUP_FACTOR / (1 - optimizer.betas[1])
    return MIN_WARMUP_STEPS


def warmed_up(optimizer: Any) -> bool:
    """The LR schedule starts below its peak and rises to it over at least warmup_steps (the
    steps gradlint followed it for, when it is still rising at the end of them). A schedule
    stepped per epoch counts whatever its length: an epoch is rarely under a hundred steps."""
    if optimizer is None or optimizer.peak_lr is None or optimizer.peak_step is None:
        return False
    if optimizer.lr >= optimizer.peak_lr:
        return False
    return optimizer.peak_interval == "epoch" or optimizer.peak_step >= warmup_steps(optimizer)


def lr_name(optimizer: Any) -> str:
    """How a fix names the lr to change: under an LR schedule, the schedule's peak."""
    return f"the {optimizer.scheduler} peak lr" if optimizer.peak_lr is not None else "lr"


def warmup_hint(optimizer: Any) -> str:
    """The warmup alternative to a lower lr, for a fix message (none under an LR schedule,
    which already shapes the lr)."""
    if optimizer.peak_lr is not None:
        return ""
    if optimizer.betas:
        steps = WARMUP_FACTOR / (1 - optimizer.betas[1])
        return f", or warm the lr up linearly over ~{steps:.0f} steps (2/(1-beta2))"
    return ", or warm the lr up linearly over the first few hundred steps"


def stability_bound(optimizer: Any) -> float:
    """lr * lambda_max above which (heavy-ball / Nesterov) gradient descent diverges on a
    quadratic (docs/theory.md, D1). GL602 checks it; a report draws the eigenvalue against it."""
    beta = optimizer.momentum
    if optimizer.nesterov and beta:
        return (2 + 2 * beta) / (1 + 2 * beta)
    return 2 + 2 * beta


def is_piecewise_linear(trace: Any) -> bool:
    """Every activation in the traced forward is ReLU-like. Such nets tolerate far larger
    lr * lambda than smooth ones before diverging (docs/theory.md G6: ReLU 40/lambda, tanh 4.5/lambda)."""
    if trace is None:
        return False
    activations = [node.name for node in trace.nodes if node.name in ACTIVATIONS]
    return bool(activations) and all(name in RELU_LIKE for name in activations)


# -- where the optimizer is built -------------------------------------------------------------------
@dataclass(frozen=True)
class OptimizerSite:
    """The optimizer's construction call in configure_optimizers, or the model when there is none."""

    location: Location
    call: ast.Call | None = None
    source: str = ""  # the call's source text
    scheduled: bool = False  # an LR schedule sets the checked (peak) lr, not the call's lr argument

    def with_lr(self, lr: float, optimizer_name: str) -> str | None:
        """The construction call rewritten with `lr`; a configure_optimizers to add when the file
        has none; None under an LR schedule, whose peak is not the call's lr."""
        if self.scheduled:
            return None
        value = format_lr(lr)
        if self.call is None:
            return (f"def configure_optimizers(model):\n"
                    f"    return torch.optim.{optimizer_name}(model.parameters(), lr={value})")
        return _replace_lr(self.call, self.source, value)


def optimizer_site(ctx: RuleContext) -> OptimizerSite:
    """The line that constructs the optimizer: the call of its class inside configure_optimizers."""
    optimizer = ctx.spec.optimizer
    if optimizer is not None and optimizer.peak_lr is not None:  # the schedule sets the checked lr
        return replace(_call_site(ctx, optimizer.scheduler), scheduled=True)
    return _call_site(ctx, optimizer.name if optimizer else None)


def _call_site(ctx: RuleContext, name: str | None) -> OptimizerSite:
    """The call of class `name` inside configure_optimizers (or the function, or the model)."""
    fallback = OptimizerSite(ctx.spec.model_location or ctx.location_of_path(""))
    try:
        with open(ctx.spec.path, encoding="utf-8") as handle:
            text = handle.read()
        tree = ast.parse(text)
    except (OSError, SyntaxError, ValueError):
        return fallback
    for function in ast.walk(tree):
        if isinstance(function, ast.FunctionDef) and function.name == "configure_optimizers":
            call = _call_of(function, name)
            if call is None:
                return OptimizerSite(Location(display_path(ctx.spec.path), function.lineno, function.col_offset + 1))
            return OptimizerSite(Location(display_path(ctx.spec.path), call.lineno, call.col_offset + 1),
                                 call, ast.get_source_segment(text, call) or "")
    return fallback


def _call_of(function: ast.FunctionDef, class_name: str | None) -> ast.Call | None:
    for node in ast.walk(function):
        if isinstance(node, ast.Call):
            callee = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", None)
            if callee == class_name:
                return node
    return None


def _replace_lr(call: ast.Call, source: str, value: str) -> str:
    """`source` (the text of `call`) with its lr argument set to `value`."""
    lr = next((k.value for k in call.keywords if k.arg == "lr"), None)
    if lr is None and len(call.args) >= 2:
        lr = call.args[1]
    if lr is None:  # no lr given: add one before the closing parenthesis
        return source[:source.rstrip().rfind(")")] + f", lr={value})"
    start = _offset(source, call, lr.lineno, lr.col_offset)
    end = _offset(source, call, lr.end_lineno, lr.end_col_offset)
    return source[:start] + value + source[end:]


def _offset(source: str, call: ast.Call, line: int, col: int) -> int:
    """Character offset in `source`, the text of `call`, of the file position (line, col): the
    text starts at the call's column on its first line and at column 0 on the others."""
    lines = source.splitlines(keepends=True)
    relative = line - call.lineno
    return sum(len(text) for text in lines[:relative]) + col - (call.col_offset if relative == 0 else 0)


def format_lr(lr: float) -> str:
    """A learning rate rounded down to one significant digit (1.3e-3 -> 1e-3, 0.04 -> 0.04)."""
    if lr <= 0 or not math.isfinite(lr):
        return f"{lr:g}"
    exponent = math.floor(math.log10(lr))
    digit = math.floor(lr / 10 ** exponent + 1e-9)
    return f"{digit * 10.0 ** exponent:.{max(0, -exponent)}f}" if exponent >= -4 else f"{digit}e{exponent}"
