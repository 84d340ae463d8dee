"""GL604 lookahead-diverges."""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass

from gradlint.findings import Fix, Severity, Stage
from gradlint.rule import Rule, RuleContext
from gradlint.rules.optimizer._common import format_lr, lr_name, optimizer_site, warmup_hint

# A few real optimizer steps on the example batch, on a copy of the model. Repeating one batch
# is the easiest task training will ever see: the loss should fall at every step. A loss that
# grows 10x or a gradient norm that grows 1000x is the corpus's own divergence criterion
# (benchmarks/truth.py), applied to the first steps.
# Twenty steps reach the early divergences of the corpus: unclipped LSTM and GRU blow up at
# steps 8-19, GPT-2 and ViT at high SGD lr after ~10 (benchmarks/truth.json), which five steps
# missed. Sixty reach the slower ones (an LSTM on targets x100 after step 20, unscaled
# attention, log(softmax) turning NaN at step 27 where its log_softmax twin keeps falling) and
# let the calibration tell a loss that keeps rising from one that recovers: the 60-step growth
# as a third feature raised the cross-validated AUROC from 0.898 to 0.911 and cut the Brier score
# from 0.105 to 0.080 (BENCHMARKS.md).
STEPS, THOROUGH_STEPS = 60, 120
# The risk model's features come from fixed windows of steps, so that --thorough (more steps)
# feeds it the quantities it was calibrated on: how fast (first 5 steps), how far (first 20)
# and whether it lasts (first 60).
FEATURE_WINDOWS = {"lookahead_growth": 5, "lookahead_growth_20": 20, "lookahead_growth_60": 60}
# What the default lookahead may spend, counted (torch.utils.flop_counter on its first step) rather
# than timed, so a file gets the same steps, findings and risk on any machine. 80 GFLOP covers all
# 60 steps of every corpus case and sample (the largest takes 1.26 GFLOP a step) and costs about
# what importing torch does on a 2-core CPU (~3 s). A larger model runs fewer steps, never fewer
# than the first feature window; a 27M-parameter Transformer on 8 x 64 tokens (71 GFLOP a step)
# took 65 s for 60 steps here, 15x its baseline. --thorough runs every step.
FLOP_BUDGET = 80e9
MIN_STEPS = 5
# 1000x the first loss is past the corpus's divergence marks (10x the loss, 1000x the gradient
# norm); more decades carry no more information, only leverage over the calibration (uncapped, a
# few Hugging Face models that explode on the repeated batch but train on fresh ones drove its
# cross-validated L2 to the largest on the grid).
MAX_DECADES = 3.0
LOSS_GROWTH_ERROR = 10.0
GRAD_GROWTH_ERROR = 1000.0
LOSS_GROWTH_WARNING = 2.0


class LookaheadDiverges(Rule):
    """
    ## What it does
    Runs the configured optimizer for 60 steps (120 with `--thorough`) on the example batch, on a
    copy of the model and a fresh optimizer with the same hyper-parameters, clipping gradients at
    `gradient_clip_val` as training would. It flags a loss that becomes non-finite or rises
    above 10x its first value (an error), or doubles (a warning), and a gradient norm that grows
    over 1000x. Under an LR schedule the steps use the schedule's peak lr. The default run spends
    at most 80 GFLOP on it (counted on the first step): a model whose step costs more runs fewer
    steps, at least 5, and the report says so. Models over 256 MB of parameters skip it unless
    `--thorough` (it copies the model and the optimizer's state).

    ## Why is this bad?
    Repeating one batch is the easiest task training will ever meet: every step should lower its
    loss. When the first few steps already raise it, the learning rate sits above the stability
    bound of the loss surface the optimizer actually sees (Cohen et al. 2021; Lewkowycz et al.
    2020): the run diverges or spikes within its first hundred steps. The single-step checks
    (GL602, GL603) see the curvature at initialization; this one also sees momentum and Adam's
    second-moment estimates building up, and the sharpening of the first steps.

    ## Example
    ```python
    def configure_optimizers(model):
        return torch.optim.SGD(model.parameters(), lr=5.0)   # loss x1e6 in 3 steps
    ```

    ## Use instead
    ```python
    def configure_optimizers(model):
        return torch.optim.SGD(model.parameters(), lr=0.01)

    gradient_clip_val = 1.0
    ```

    ## References
    - Cohen et al. 2021, Gradient Descent on Neural Networks Typically Occurs at the Edge of Stability, arXiv:2103.00065
    - Lewkowycz et al. 2020, The large learning rate phase of deep learning: the catapult mechanism, arXiv:2003.02218
    """

    code = "GL604"
    name = "lookahead-diverges"
    family = "optimizer"
    severity = Severity.ERROR
    stages = frozenset({Stage.PROBE})

    INVALID = ('''
import torch
import torch.nn as nn

def build_model():
    return nn.Sequential(nn.Linear(16, 32), nn.Tanh(), nn.Linear(32, 4))

def example_inputs():
    return (torch.randn(32, 16, generator=torch.Generator().manual_seed(0)),)

def example_targets():
    return torch.randn(32, 4, generator=torch.Generator().manual_seed(1))

def loss_fn(output, targets):
    return nn.functional.mse_loss(output, targets)

def configure_optimizers(model):
    return torch.optim.SGD(model.parameters(), lr=5.0)  # expect: GL604
''',)
    VALID = (INVALID[0].replace("lr=5.0", "lr=0.05"),)

    def check(self, ctx: RuleContext):
        optimizer = ctx.spec.optimizer_object
        if optimizer is None or ctx.spec.optimizer is None:
            return
        if ctx.lean:  # steps a copy of the model and the optimizer's state
            ctx.lean_skip("GL604 lookahead")
            return
        steps = THOROUGH_STEPS if ctx.thorough else STEPS
        run = _lookahead(ctx, steps, None if ctx.thorough else FLOP_BUDGET)
        losses, grads = run.losses, run.grads
        if not losses:
            return
        if run.planned_steps < steps:
            ctx.note("lookahead", f"lookahead: GL604 ran {run.planned_steps} of its {steps} steps, as one step of this "
                                  f"model costs {run.flops_per_step / 1e9:.3g} GFLOP against a budget of "
                                  f"{FLOP_BUDGET / 1e9:g} GFLOP; --thorough runs {THOROUGH_STEPS}")
        for feature, window in FEATURE_WINDOWS.items():
            ctx.record(feature, growth_decades(losses[:window], grads[:window]))
        finite, loss_growth, grad_growth = growth(losses, grads)
        if finite and loss_growth < LOSS_GROWTH_WARNING and grad_growth < GRAD_GROWTH_ERROR:
            return
        described = ctx.spec.optimizer.describe()
        if not finite:
            what = f"the loss becomes non-finite within {len(losses)} {described} steps on the example batch"
        else:
            what = (f"{len(losses)} {described} steps on the example batch raise its loss to {loss_growth:.3g}x "
                    f"its first value (gradient norm {grad_growth:.3g}x) instead of lowering it")
        error = not finite or loss_growth >= LOSS_GROWTH_ERROR or grad_growth >= GRAD_GROWTH_ERROR
        site = optimizer_site(ctx)
        safe_lr = ctx.spec.optimizer.checked_lr / 10
        yield self.finding(
            ctx, what + clipping_note_text(ctx), location=site.location,
            fix=Fix(f"lower the learning rate (try {lr_name(ctx.spec.optimizer)} = {format_lr(safe_lr)})"
                    f"{warmup_hint(ctx.spec.optimizer)}, "
                    "or clip gradients (gradient_clip_val = 1.0)", site.with_lr(safe_lr, ctx.spec.optimizer.name)),
            severity=Severity.ERROR if error else Severity.WARNING,
            weight=0.85 if error else 0.4,
        )


def growth(losses: list[float], grads: list[float]) -> tuple[bool, float, float]:
    """(all finite, loss growth, gradient-norm growth) over the steps, each against the first.

    The loss grows when it rises above its first value, as the corpus's criterion reads it: a
    loss that can go negative (a Poisson or Gaussian NLL) falling to -5 from 0.9 is progress,
    not a 5x growth. A first loss at or below 0 has no growth ratio; the gradient norm still does.
    """
    if not all(math.isfinite(v) for v in (*losses, *grads)):
        return False, math.inf, math.inf
    loss_growth = max(losses) / losses[0] if losses[0] > 0 else 1.0
    return True, loss_growth, max(grads) / max(grads[0], 1e-12)


def growth_decades(losses: list[float], grads: list[float]) -> float:
    """For the risk model: decades of growth, 0 when the loss only falls; the gradient norm counts
    from 100x, the loss from 1x. Capped at MAX_DECADES, which a non-finite loss also gets."""
    finite, loss_growth, grad_growth = growth(losses, grads)
    if not finite:
        return MAX_DECADES
    return min(max(math.log10(max(loss_growth, 1.0)), math.log10(max(grad_growth, 1.0)) - 2), MAX_DECADES)


def clipping_note_text(ctx: RuleContext) -> str:
    clip = ctx.spec.gradient_clip_val
    return f" (with gradients clipped at {clip:g})" if clip else ""


def affordable_steps(steps: int, flops_per_step: float, budget: float) -> int:
    """How many of `steps` lookahead steps fit in `budget` FLOPs, at least MIN_STEPS."""
    if flops_per_step <= 0:  # nothing the counter knows (e.g. an RNN's fused kernels): no reason to cut
        return steps
    return min(steps, max(MIN_STEPS, int(budget // flops_per_step)))


@dataclass(frozen=True)
class LookaheadRun:
    losses: list[float]  # per step; the run stops at the first non-finite loss or gradient norm
    grads: list[float]  # global gradient norms before clipping
    planned_steps: int  # the steps asked for, or fewer where the FLOP budget cut them
    flops_per_step: float = 0.0  # one step's forward and backward; 0 when not counted


def _lookahead(ctx: RuleContext, steps: int, flop_budget: float | None) -> LookaheadRun:
    """`steps` optimizer steps on a copy of the model. With a budget, the first step's FLOPs are
    counted and the rest cut to what the budget affords (affordable_steps)."""
    import copy

    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from gradlint.curvature import at_checked_lr
    from gradlint.load import fresh_optimizer
    from gradlint.losses import training_loss

    spec = ctx.spec
    model = copy.deepcopy(spec.model).to(ctx.device)
    model.train()
    try:
        optimizer = at_checked_lr(fresh_optimizer(spec.optimizer_object, model.parameters()), spec.optimizer)
    except Exception:  # an optimizer that cannot be rebuilt from its hyper-parameters
        return LookaheadRun([], [], 0)
    inputs = tuple(t.to(ctx.device) if isinstance(t, torch.Tensor) else t for t in spec.inputs)
    targets = spec.targets.to(ctx.device) if isinstance(spec.targets, torch.Tensor) else spec.targets
    torch.manual_seed(ctx.seed)
    losses, grads, flops = [], [], 0.0
    while len(losses) < steps:
        counting = flop_budget is not None and not losses
        with FlopCounterMode(display=False) if counting else contextlib.nullcontext() as counter:
            loss, _ = training_loss(model(*inputs), targets, spec.loss_fn, ctx.seed, kind=spec.loss)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
        if counting:
            flops = float(counter.get_total_flops())
            steps = affordable_steps(steps, flops, flop_budget)
        ctx.count_passes(forward=1, backward=1)
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), spec.gradient_clip_val or math.inf)
        losses.append(float(loss.detach()))
        grads.append(float(norm))
        if not (math.isfinite(losses[-1]) and math.isfinite(grads[-1])):
            break
        optimizer.step()
    return LookaheadRun(losses, grads, steps, flops)
