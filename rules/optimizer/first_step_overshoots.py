"""GL603 first-step-overshoots."""

from __future__ import annotations

import math

from gradlint.rule import (
    Rule, RuleContext, Fix, Severity, Stage, assumed_optimizer, clipping_note, format_lr, lookahead, lr_name,
    warmed_up, warmup_hint,
)

# The measured quantity is rho = (loss before - loss after) / (-g . update): the share of the
# decrease a linear model predicts that the step realizes (the trust-region ratio, Nocedal &
# Wright, Numerical Optimization, ch. 4). On the quadratic along the update, q = 2 (1 - rho) is
# lr * curvature in gradient-descent units: q = 2 (rho = 0) is the edge of stability and q = 4
# (rho = -1) the divergence mark for smooth nets (docs/theory.md D1, D2). The warning sits a little
# below the edge because bounded losses (saturated tanh, cross-entropy) flatten the secant:
# the no-warmup Transformer failures of docs/theory.md G5 (Adam, lr 1e-2) measure rho = 0.03-0.08 here,
# the runs that train (lr <= 3e-3) rho >= 0.19.
RHO_WARNING = 0.1  # q = 1.8
RHO_ERROR = -1.0  # q = 4
# The fix: the largest lr (halving from the configured one) whose first step realizes at least
# a quarter of the predicted decrease, the trust-region method's "good step" mark.
RHO_GOOD = 0.25
HALVINGS, THOROUGH_HALVINGS = 6, 10  # one forward pass each


class FirstStepOvershoots(Rule):
    """
    ## What it does
    Applies the adaptive optimizer's first step (Adam, AdamW, RMSprop, ...; on copies of the
    parameters) and measures the example-batch loss after it: the share rho of the decrease
    the gradient predicts (-g . update) that the step realizes. rho < 0.1 warns, rho < -1 (the
    loss rises by more than it should have fallen) is an error. It then halves the learning
    rate until a step realizes a quarter of its predicted decrease, and proposes that lr.
    Under an LR schedule the step is taken at the schedule's peak lr; when the schedule warms
    up over at least 2/(1-beta2) steps, the first step is taken at its starting lr instead, and
    only the error (rho < -1) is checked at the peak. Models over 256 MB of parameters skip it
    unless `--thorough` (the shifted parameters are a second copy).

    ## Why is this bad?
    Adam's first step is about lr * sign(g) in every weight, whatever the curvature: its size
    ignores how sharply the loss bends along it. Along the update, rho = 1 - q/2 where q is lr
    times the curvature in gradient-descent units; q > 2 (rho < 0) means the step jumps past the
    minimum along its own direction, q > 4 diverges for smooth nets (Cohen et al. 2021/2022,
    Lewkowycz et al. 2020). Transformers trained with Adam without warmup fail in exactly this
    regime (Liu et al. 2019; Xiong et al. 2020; in gradlint's measurements, docs/theory.md G5,
    6-layer encoders at lr 1e-2 realize 3-8%), and gradient clipping does not help: Adam divides
    the gradient by its own magnitude, so the first step has the same size clipped or not.

    ## Example
    ```python
    def configure_optimizers(model):
        return torch.optim.Adam(model.parameters(), lr=0.1)   # loss 2.3 -> 356 after one step
    ```

    ## Use instead
    ```python
    def configure_optimizers(model):
        return torch.optim.Adam(model.parameters(), lr=6e-3)  # loss 2.3 -> 1.2; or warm up
    ```

    ## References
    - Cohen et al. 2022, Adaptive Gradient Methods at the Edge of Stability, arXiv:2207.14484
    - Lewkowycz et al. 2020, The large learning rate phase of deep learning: the catapult mechanism, arXiv:2003.02218
    - Liu et al. 2019, On the Variance of the Adaptive Learning Rate and Beyond (RAdam), arXiv:1908.03265
    - Xiong et al. 2020, On Layer Normalization in the Transformer Architecture, arXiv:2002.04745
    - Ma & Yarats 2019, On the adequacy of untuned warmup for adaptive optimization, arXiv:1910.04209
    - docs/theory.md, D2 (rho and the divergence mark) and G5 (the no-warmup Transformers)
    """

    code = "GL603"
    name = "first-step-overshoots"
    family = "optimizer"
    severity = Severity.WARNING
    stages = frozenset({Stage.PROBE})
    reads_lr = True

    INVALID = ('''
import torch
import torch.nn as nn

def build_model():
    return nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 10))

def example_inputs():
    return (torch.randn(32, 784),)

def configure_optimizers(model):
    return torch.optim.Adam(model.parameters(), lr=0.1)  # expect: GL603
''',)
    VALID = ('''
import torch
import torch.nn as nn

def build_model():
    return nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 10))

def example_inputs():
    return (torch.randn(32, 784),)

def configure_optimizers(model):
    return torch.optim.Adam(model.parameters(), lr=1e-3)
''',)

    def check(self, ctx: RuleContext):
        optimizer = ctx.spec.optimizer
        if optimizer is None or not optimizer.is_adaptive or optimizer.checked_lr <= 0:
            return
        if ctx.lean:  # the loss after the step needs the shifted parameters: one more copy
            ctx.lean_skip("GL603 line search")
            return
        step = ctx.first_step()
        if step is None or not (math.isfinite(step.descent) and step.descent > 0):
            return  # no descent step to measure; a non-finite gradient is GL501's
        halvings = THOROUGH_HALVINGS if ctx.thorough else HALVINGS
        loss_after, safe_scale = _line_search(ctx, step, halvings)
        rho = (step.loss - loss_after) / step.descent if math.isfinite(loss_after) else -math.inf
        # For the risk model: lr x curvature along the step in gradient-descent units (capped).
        ctx.record("adam_step_curvature", min(2 * (1 - rho), 10.0))
        if rho >= RHO_WARNING:
            return
        if warmed_up(optimizer) and rho >= RHO_ERROR:
            # A warmup takes the first steps at its starting lr, while Adam's second-moment estimate
            # settles: the warning is about those steps, and the first step is linear in lr. Past
            # the divergence mark the peak stays an error, whatever came before it.
            yield from self._at_warmup_start(ctx, step)
            return
        q = 2 * (1 - rho)
        site = ctx.optimizer_site()
        if math.isfinite(loss_after):
            measured = (f"{loss_after:.4g}, realizing {rho:.0%} of the {step.descent:.3g} decrease its gradient "
                        f"predicts: along the update lr x curvature = {q:.3g} (stable below 2, diverging above ~4)")
        else:  # no share of the decrease, and no curvature, can be read from a loss that overflowed
            measured = (f"{loss_after:g} instead of the {step.descent:.3g} decrease its gradient predicts: the step "
                        "is so large that the loss overflows")
        yield self.finding(
            ctx,
            f"the first {optimizer.describe()} step takes the example-batch loss from {step.loss:.4g} to "
            f"{measured}{clipping_note(ctx, step)}{assumed_optimizer(ctx)}",
            location=site.location,
            fix=_fix(optimizer, safe_scale, halvings, site),
            severity=Severity.ERROR if rho < RHO_ERROR else Severity.WARNING,
            weight=_weight(q),
        )


    def _at_warmup_start(self, ctx: RuleContext, step):
        optimizer = ctx.spec.optimizer
        scale = optimizer.lr / optimizer.checked_lr
        with ctx.loss_surface() as surface:
            rho = _realized(step, lookahead(surface, step, scale), scale) if scale > 0 else 1.0
        if rho >= RHO_WARNING:
            return
        q = 2 * (1 - rho)
        yield self.finding(
            ctx,
            f"the first {optimizer.name} step, at the {optimizer.scheduler}'s starting lr {optimizer.lr:g}, realizes "
            f"{rho:.0%} of the decrease its gradient predicts: along the update lr x curvature = {q:.3g} (stable "
            f"below 2, diverging above ~4){clipping_note(ctx, step)}",
            location=ctx.optimizer_site().location,
            fix=f"start the warmup lower (lr <= {format_lr(optimizer.lr / 2)})",
            severity=Severity.ERROR if rho < RHO_ERROR else Severity.WARNING,
            weight=_weight(q),
        )


def _line_search(ctx: RuleContext, step, halvings: int) -> tuple[float, float | None]:
    """The loss after the configured step, and the largest lr multiplier 2^-k (k <= halvings)
    whose step realizes RHO_GOOD of its predicted decrease (None if none does). The first step
    is linear in lr, so scaling the update is exactly a smaller lr."""
    with ctx.loss_surface() as surface:
        loss_after = lookahead(surface, step, 1.0)
        if _realized(step, loss_after, 1.0) >= RHO_WARNING:
            return loss_after, 1.0
        for k in range(1, halvings + 1):
            scale = 0.5 ** k
            if _realized(step, lookahead(surface, step, scale), scale) >= RHO_GOOD:
                return loss_after, scale
        return loss_after, None


def _realized(step, loss_after: float, scale: float) -> float:
    if not math.isfinite(loss_after):
        return -math.inf
    return (step.loss - loss_after) / (scale * step.descent)


def _fix(optimizer, safe_scale: float | None, halvings: int, site) -> Fix:
    warmup = warmup_hint(optimizer)
    if safe_scale is None:
        return Fix(f"even lr {optimizer.checked_lr * 0.5 ** halvings:.2g} overshoots: check the loss scale and "
                   f"initialization before tuning lr{warmup}")
    safe_lr = optimizer.checked_lr * safe_scale
    return Fix(f"use {lr_name(optimizer)} <= {format_lr(safe_lr)}, where the first step realizes >= {RHO_GOOD:.0%} of its predicted "
               f"decrease{warmup}", site.with_lr(safe_lr, optimizer.name))


def _weight(q: float) -> float:
    """0.3 at the warning mark q = 1.8, 0.7 at the divergence mark q = 4, up to 0.9 beyond."""
    if q < 4:
        return 0.3 + 0.4 * (q - 2 * (1 - RHO_WARNING)) / (4 - 2 * (1 - RHO_WARNING))
    return min(0.9, 0.7 + 0.2 * math.log10(q / 4))
