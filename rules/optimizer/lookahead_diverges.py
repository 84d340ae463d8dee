"""GL604 lookahead-diverges."""

from __future__ import annotations

import math

from gradlint.rule import (
    RESAMPLED, Rule, RuleContext, Fix, LookaheadRun, Severity, Stage, assumed_optimizer, format_lr, lr_name,
    shared_rows, warmup_hint,
)

# A few real optimizer steps on a copy of the model, twice: on the example batch repeated, and on
# batches drawn from its rows with replacement (gradlint.batches), seeded. Either loss should fall
# step after step; a loss that grows 10x or a gradient norm that grows 1000x is the corpus's own
# divergence criterion (benchmarks/truth.py), applied to the first steps.
# The repeated batch shows the learning rate against the curvature with no noise in the way;
# twenty steps reach the corpus's early divergences (unclipped RNNs, GPT-2 and ViT at high SGD
# lr), which five missed. The resampled rows add the gradient noise of fresh batches, and the
# divergences that noise drives (heavy momentum, an exp link), which the repeated batch does not
# show; sixty steps reach the slower ones. How each step count and feature window was chosen,
# with the AUROC each choice measured: BENCHMARKS.md ("GL604's resampled run", "What moved the
# number", "Longer resampled runs").
REPEATED_STEPS, RESAMPLED_STEPS, THOROUGH_STEPS = 20, 60, 120
# The risk model's features come from fixed windows of steps, so that --thorough (more steps)
# feeds it the quantities it was calibrated on: how fast (first 5 steps) and how far (first 20)
# the repeated batch's loss grows, and whether the resampled rows' growth lasts (first 60).
FEATURE_WINDOWS = {"lookahead_growth": 5, "lookahead_growth_20": 20}
RESAMPLED_FEATURE_WINDOWS = {"resampled_growth_60": 60}
# What each of the default run's two lookaheads may spend, counted (torch.utils.flop_counter on its
# first step) rather than timed, so a file gets the same steps, findings and risk on any machine.
# 80 GFLOP covers all 60 steps of every corpus case and sample (the largest takes 1.26 GFLOP a
# step) and costs about what importing torch does on a 2-core CPU (~3 s). A larger model runs
# fewer steps, never fewer than the first feature window; a 27M-parameter Transformer on 8 x 64
# tokens (71 GFLOP a step) took 65 s for 60 steps here, 15x its baseline. --thorough runs every step.
FLOP_BUDGET = 80e9
# 1000x the first loss is past the corpus's divergence marks (10x the loss, 1000x the gradient
# norm); more decades carry no more information, only leverage over the calibration (uncapped, a
# few Hugging Face models that explode on the repeated batch but train on fresh ones drove its
# cross-validated L2 to the largest on the grid).
MAX_DECADES = 3.0
LOSS_GROWTH_ERROR = 10.0
GRAD_GROWTH_ERROR = 1000.0
# A loss that doubles is an info: of the 13 corpus cases flagged so (and not at the error marks),
# 6 failed to train, fewer than half (BENCHMARKS.md, "Severities"); 37 of the 41 at the error marks did.
LOSS_GROWTH_WARNING = 2.0
# Batches drawn from the example batch differ from step to step, and so does their loss: one
# batch of 8 rows drawn with replacement, in a small BatchNorm ResNet-18 at the CIFAR recipe's lr 0.1
# (benchmarks/recipes), scored 2.4x the first batch's loss while the run's loss fell to 0.04. The warning reads the resampled
# run's loss averaged over this many steps, which a lasting rise moves and one batch does not;
# the error (10x, non-finite) reads single steps, as the corpus's divergence criterion does.
RESAMPLED_WINDOW = 5


class LookaheadDiverges(Rule):
    """
    ## What it does
    Trains a copy of the model for a few optimizer steps and flags a loss or gradient norm that
    grows instead of falling.

    The steps use a fresh optimizer with the configured hyper-parameters (the schedule's peak lr
    under an LR schedule) and clip gradients at `gradient_clip_val` as training would. There are
    two runs: 20 steps on the example batch repeated, and 60 on batches drawn from its rows with
    replacement (seeded by `--seed`), whose gradient varies from step to step as it does over
    fresh batches (`--thorough`: 120 steps each). A batch whose tensors disagree on their first
    dimension is only repeated, for 60 steps. A loss that becomes non-finite or rises above 10x its
    first value, or a gradient norm that grows over 1000x, is an error; a loss that doubles is an
    info (on resampled rows, the loss averaged over 5 steps: one batch scoring twice the first is
    the batch, not the run). The repeated batch's finding is reported first, as it has no noise
    to blame.

    Each run spends at most 80 GFLOP by default (counted on the first step): a model whose step
    costs more runs fewer steps, at least 5, and the report says so. Models over 256 MB of
    parameters skip the rule unless `--thorough` (it copies the model and the optimizer's state).

    ## Why is this bad?
    Batches drawn from the example batch are the easiest data training will ever meet: the loss
    should fall step after step. When the first few steps already raise it, the learning rate sits
    above the stability bound of the loss surface the optimizer actually sees (Cohen et al. 2021;
    Lewkowycz et al. 2020): the run diverges or spikes within its first hundred steps. The
    single-step checks (GL602, GL603) see the curvature at initialization; this one also sees
    momentum and Adam's second-moment estimates building up, the sharpening of the first steps,
    and the gradient noise that heavy momentum or an `exp` link turns into a blow-up.

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
    - docs/theory.md, D1 (sharpness bounds), D2 (the catapult) and D5 (what only training steps show)
    - BENCHMARKS.md, "GL604's resampled run": how the step counts were chosen and what each run catches
    """

    code = "GL604"
    name = "lookahead-diverges"
    family = "optimizer"
    severity = Severity.ERROR
    stages = frozenset({Stage.PROBE})
    reads_lr = True
    steps_optimizer = True

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
    VALID = (INVALID[0].replace("lr=5.0", "lr=0.05"), '''
# BatchNorm on batches of 8 rows drawn with replacement: single batches score up to twice the first
# loss, while the loss averaged over 5 steps, and the repeated batch's, fall.
import torch
import torch.nn as nn

def build_model():
    layers, channels = [], 3
    for width in (16, 32, 32, 64):
        layers += [nn.Conv2d(channels, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU()]
        channels = width
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, 10))

def example_inputs():
    return (torch.randn(8, 3, 16, 16, generator=torch.Generator().manual_seed(0)),)

def example_targets():
    return torch.arange(8) % 10

def configure_optimizers(model):
    return torch.optim.SGD(model.parameters(), lr=0.7, momentum=0.9)
''')

    def check(self, ctx: RuleContext):
        optimizer = ctx.spec.optimizer_object
        if optimizer is None or ctx.spec.optimizer is None:
            return
        if ctx.spec.optimizer.checked_lr <= 0:
            # lr 0 takes no step: the repeated batch's loss cannot change, and the resampled rows'
            # would vary by batch alone, which is noise, not divergence.
            return
        if ctx.lean:  # steps a copy of the model and the optimizer's state
            ctx.lean_skip("GL604 lookahead")
            return
        budget = None if ctx.thorough else FLOP_BUDGET
        repeated_steps, resampled_steps = (THOROUGH_STEPS,) * 2 if ctx.thorough else (REPEATED_STEPS, RESAMPLED_STEPS)
        rows = _resampled_rows(ctx)
        repeated = ctx.lookahead(repeated_steps if rows else resampled_steps, budget)
        if not repeated.losses:
            return
        if rows:
            # The same model on batches of the same shape: the first run's count holds (counting
            # costs about 5 steps of a small Transformer).
            resampled = ctx.lookahead(resampled_steps, budget, rows=rows, counted=repeated.flops_per_step)
        else:  # one run on the repeated batch, as long as the resampled one would have been
            resampled = repeated
        runs = (repeated,) if resampled is repeated else (repeated, resampled)
        cut = [run for run in runs if run.planned_steps < run.asked_steps]
        if cut:
            ran = " and ".join(f"{run.planned_steps} of its {run.asked_steps} steps on {run.batches}" for run in cut)
            ctx.note("lookahead", f"lookahead: GL604 ran {ran}, as one step of this model costs "
                                  f"{cut[0].flops_per_step / 1e9:.3g} GFLOP against a budget of "
                                  f"{FLOP_BUDGET / 1e9:g} GFLOP a run; --thorough runs {THOROUGH_STEPS}")
        for run, windows in ((repeated, FEATURE_WINDOWS), (resampled, RESAMPLED_FEATURE_WINDOWS)):
            for feature, window in windows.items():
                ctx.record(feature, growth_decades(run.losses[:window], run.grads[:window]))
        # Report the repeated batch's growth when it has any: it has no noise to blame.
        for run in runs:
            finding = self._finding(ctx, run)
            if finding is not None:
                yield finding
                return

    def _finding(self, ctx: RuleContext, run: LookaheadRun):
        losses, grads = run.losses, run.grads
        if not losses:
            return None
        finite, loss_growth, grad_growth = growth(losses, grads)
        error = not finite or loss_growth >= LOSS_GROWTH_ERROR or grad_growth >= GRAD_GROWTH_ERROR
        resampled = run.batches == RESAMPLED
        averaged = smoothed_growth(losses, RESAMPLED_WINDOW) if resampled and not error else None
        if not error and (averaged if averaged is not None else loss_growth) < LOSS_GROWTH_WARNING:
            return None
        described = ctx.spec.optimizer.describe()
        if not finite:
            what = f"the loss becomes non-finite within {len(losses)} {described} steps on {run.batches}"
        elif averaged is not None:
            what = (f"{len(losses)} {described} steps on {run.batches} raise the loss, averaged over "
                    f"{RESAMPLED_WINDOW} steps, to {averaged:.3g}x its first {RESAMPLED_WINDOW} steps' "
                    f"(gradient norm {grad_growth:.3g}x) instead of lowering it")
        else:
            what = (f"{len(losses)} {described} steps on {run.batches} raise the loss to {loss_growth:.3g}x "
                    f"its first value (gradient norm {grad_growth:.3g}x) instead of lowering it")
        site = ctx.optimizer_site()
        safe_lr = ctx.spec.optimizer.checked_lr / 10
        return self.finding(
            ctx, what + clipping_note_text(ctx) + assumed_optimizer(ctx), location=site.location,
            fix=Fix(f"lower the learning rate (try {lr_name(ctx.spec.optimizer)} = {format_lr(safe_lr)})"
                    f"{warmup_hint(ctx.spec.optimizer)}, "
                    "or clip gradients (gradient_clip_val = 1.0)", site.with_lr(safe_lr, ctx.spec.optimizer.name)),
            severity=Severity.ERROR if error else Severity.INFO,
            weight=0.85 if error else 0.4,
        )


def _resampled_rows(ctx: RuleContext) -> int | None:
    """The example batch's rows to draw from: more than one, the same number in every tensor; else
    None, and the resampled run is skipped (with a note when the tensors disagree)."""
    rows = shared_rows(ctx.spec.inputs, ctx.spec.targets, ctx.spec.input_kwargs)
    if rows is None:
        ctx.note("lookahead.rows", "lookahead: the example batch's tensors disagree on their first dimension, so "
                                   "GL604 does not resample its rows and only repeats it")
    return rows if rows is not None and rows > 1 else None


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


def smoothed_growth(losses: list[float], window: int) -> float | None:
    """The largest mean of `window` consecutive losses against the mean of the first `window`
    (finite losses); None when the run is shorter than two windows or its first mean is not
    positive (then the single steps decide)."""
    if len(losses) < 2 * window:
        return None
    means = [sum(losses[i:i + window]) / window for i in range(len(losses) - window + 1)]
    return max(means) / means[0] if means[0] > 0 else None


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
