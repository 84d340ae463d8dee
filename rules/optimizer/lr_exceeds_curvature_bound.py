"""GL602 lr-exceeds-curvature-bound."""

from __future__ import annotations

import math

from gradlint.rule import (
    Rule, RuleContext, Fix, Severity, Stage, assumed_optimizer, cross_entropy_loss, format_lr, is_piecewise_linear,
    lr_name, stability_bound,
)

# Optimizers whose stability on a quadratic is lr * lambda_max against a fixed bound.
GRADIENT_DESCENT = {"SGD", "ASGD"}
# Lanczos iterations (one Hessian-vector product each) for the top eigenvalue. The estimate is a
# lower bound: 10 iterations from the gradient came within 1% on a ReLU MLP and a BN CNN and
# within ~8% on a tanh MLP with clustered top eigenvalues (30 converge everywhere we measured);
# --thorough runs 30 and adds random restarts.
ITERATIONS, THOROUGH_ITERATIONS, THOROUGH_RESTARTS = 10, 30, 2
# lr * lambda / bound above which divergence is likely, not just a catapult (docs/theory.md D2, G6):
# smooth nets (tanh) diverge from 4/lambda = 2x the GD bound; ReLU nets catapulted up to
# 24/lambda and diverged at 40/lambda = 20x.
STRONG_SMOOTH, STRONG_PIECEWISE_LINEAR = 2.0, 20.0
# With gradient clipping at c every step is at most lr * c / (1 - momentum): the loss can then
# jump by at most lambda/2 * step^2. Below the initial loss, clipping contains the instability.
CLIPPED_WEIGHT_FACTOR = 0.5
# Severities, from what the flagged corpus cases did (BENCHMARKS.md, "Severities"): between the
# bound and 4x the divergence mark, 14 of 22 failed to train (a warning); from 4x the mark, 15 of
# 16 (an error). With clipping (which bounds each step), or with an excess that is the output
# layer's under cross-entropy, 1 of 4 (an info).
ERROR_MARKS = 4.0
MAX_MOMENTUM = 0.999  # keeps lr * clip / (1 - momentum) finite


class LrExceedsCurvatureBound(Rule):
    """
    ## What it does
    Estimates the top eigenvalue lambda of the loss Hessian at initialization on the example
    batch (Lanczos on Hessian-vector products) and flags SGD learning rates above the
    stability bound: lr * lambda > 2, or 2 + 2*momentum with heavy-ball momentum, or
    (2 + 2*momentum) / (1 + 2*momentum) with Nesterov. Weights whose scale a normalization
    after them divides out (a convolution before BatchNorm) are held still: along them the
    curvature falls as 1/||W||^2 while every step too long for it grows ||W||, so SGD on them
    tunes its own rate (Arora et al. 2019); the eigenvalue is that of the other parameters.
    A warning from the bound, an error from 4x the divergence mark of the net's kind (below);
    with `gradient_clip_val` set, an info, and quiet when clipping bounds the loss jump
    lambda/2 * (lr * clip)^2 below the initial loss. Under cross-entropy, an excess below the
    divergence mark that is all the output layer's (without it the eigenvalue is within the
    bound) is an info too: cross-entropy is Lipschitz in the logits, so that layer oscillates
    within bounds while the softmax saturates (a catapult, as a BatchNorm ResNet's classifier
    does at the CIFAR recipe's lr 0.1). Under an LR schedule it checks the
    schedule's peak lr (gradlint.optimizers). Models over 256 MB of parameters skip it unless
    `--thorough` (Lanczos holds a copy per iteration).

    ## Why is this bad?
    On a quadratic, gradient descent multiplies the error along the top curvature direction by
    |1 - lr * lambda| per step: above 2/lambda it grows geometrically (Cohen et al. 2021).
    Networks survive up to ~4/lambda by a "catapult" that flattens the surface, and diverge
    beyond (Lewkowycz et al. 2020; in gradlint's measurements, docs/theory.md G6, tanh nets
    diverge at 4.5/lambda, ReLU nets at 40/lambda).

    ## Example
    ```python
    def configure_optimizers(model):
        return torch.optim.SGD(model.parameters(), lr=0.5)   # lambda = 48: lr * lambda = 24
    ```

    ## Use instead
    ```python
    def configure_optimizers(model):
        return torch.optim.SGD(model.parameters(), lr=0.02)  # below 1/lambda
    ```

    ## References
    - Cohen et al. 2021, Gradient Descent on Neural Networks Typically Occurs at the Edge of Stability, arXiv:2103.00065
    - Lewkowycz et al. 2020, The large learning rate phase of deep learning: the catapult mechanism, arXiv:2003.02218
    - Pascanu, Mikolov, Bengio 2013, On the difficulty of training recurrent neural networks (clipping), arXiv:1211.5063
    - docs/theory.md, D1 (bounds with momentum), D2 and G6 (the catapult and the divergence marks)
    - Arora, Li, Lyu 2019, Theoretical Analysis of Auto Rate-Tuning by Batch Normalization, arXiv:1812.03981
    """

    code = "GL602"
    name = "lr-exceeds-curvature-bound"
    family = "optimizer"
    severity = Severity.WARNING
    stages = frozenset({Stage.PROBE})
    reads_lr = True

    INVALID = ('''
import torch
import torch.nn as nn

def build_model():
    return nn.Sequential(nn.Linear(32, 64), nn.Tanh(), nn.Linear(64, 10))

def example_inputs():
    return (torch.randn(16, 32) * 3,)

def configure_optimizers(model):
    return torch.optim.SGD(model.parameters(), lr=20.0)  # expect: GL602
''', '''
# The same model at lr 10 on a squared error: the curvature the loss sees, 1.27, exceeds 3.8 / lr
# (under cross-entropy that excess, all the output layer's, would be a bounded catapult: an info).
import torch
import torch.nn as nn

def build_model():
    model = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU(),
                          nn.Conv2d(16, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32), nn.ReLU(),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10))
    for conv in (model[0], model[3]):
        nn.init.normal_(conv.weight, std=0.01)
    return model

def example_inputs():
    return (torch.randn(16, 3, 16, 16),)

def example_targets():
    return torch.randn(16, 10)

def loss_fn(output, targets):
    return nn.functional.mse_loss(output, targets)

def configure_optimizers(model):
    return torch.optim.SGD(model.parameters(), lr=10.0, momentum=0.9)  # expect: GL602
''')
    VALID = ('''
import torch
import torch.nn as nn

def build_model():
    return nn.Sequential(nn.Linear(32, 64), nn.Tanh(), nn.Linear(64, 10))

def example_inputs():
    return (torch.randn(16, 32) * 3,)

def configure_optimizers(model):
    return torch.optim.SGD(model.parameters(), lr=0.1)
''', '''
# The convolutions start at std 0.01, so the curvature along them is large (it grows as 1/||W||^2),
# but BatchNorm divides their scale out: at lr 0.5 only the rest's curvature, 0.77, counts.
import torch
import torch.nn as nn

def build_model():
    model = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU(),
                          nn.Conv2d(16, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32), nn.ReLU(),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10))
    for conv in (model[0], model[3]):
        nn.init.normal_(conv.weight, std=0.01)
    return model

def example_inputs():
    return (torch.randn(16, 3, 16, 16),)

def configure_optimizers(model):
    return torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
''')

    def check(self, ctx: RuleContext):
        optimizer = ctx.spec.optimizer
        if optimizer is None or optimizer.name not in GRADIENT_DESCENT or optimizer.checked_lr <= 0:
            return
        if ctx.lean:  # Lanczos holds one copy of the parameters per iteration
            ctx.lean_skip("GL602 curvature")
            return
        step = ctx.first_step()
        if step is None:
            return
        # Weights whose scale a normalization divides out are held still: along them the curvature
        # falls as their norm grows, and every step too long for it grows the norm (measure.scale),
        # so their curvature cannot make training diverge; the rest's can.
        invariant = ctx.scale_invariant_weights()
        eigenvalue = _top_eigenvalue(ctx, step.gradient, invariant)
        if not math.isfinite(eigenvalue) or eigenvalue <= 0:
            return
        bound = stability_bound(optimizer)
        ratio = optimizer.checked_lr * eigenvalue / bound
        clip = ctx.spec.gradient_clip_val
        strong = STRONG_PIECEWISE_LINEAR if is_piecewise_linear(ctx.trace) else STRONG_SMOOTH
        # For the risk model: decades of lr x curvature against the divergence mark of this kind
        # of net (0 at 1% of it, 2 at the mark).
        ctx.record("lr_x_curvature_clipped" if clip else "lr_x_curvature", math.log10(ratio / strong) + 2)
        jump = _clipped_loss_jump(optimizer, clip, eigenvalue)
        if ratio <= 1.0 or jump <= step.loss:
            return  # stable, or clipping keeps every loss jump below the loss itself
        # Under cross-entropy, an excess that is the output layer's alone, below the divergence mark,
        # oscillates the output layer within bounds (measure.scale): an info.
        rest = self._without_output_layer(ctx, step, invariant) if ratio < strong else None
        bounded = rest is not None and optimizer.checked_lr * rest <= stability_bound(optimizer)
        safe_lr = bound / eigenvalue / 2
        site = ctx.optimizer_site()
        clip_note = f"; gradient_clip_val={clip:g} lets the loss jump by up to {jump:.3g}" if clip else ""
        held = (f" (over the parameters whose scale the loss sees: {len(invariant)} weight tensors before a "
                "normalization left out)") if invariant else ""
        excess = (f"; without the output layer lambda is {rest:.3g}, within the bound: the excess is the output "
                  "layer's, and cross-entropy, Lipschitz in the logits, keeps its oscillation bounded (a catapult, "
                  "not a divergence)") if bounded else ""
        yield self.finding(
            ctx,
            f"lr {optimizer.checked_lr:g}{_peak_note(optimizer)} x top Hessian eigenvalue {eigenvalue:.3g}{held} = "
            f"{optimizer.checked_lr * eigenvalue:.3g} exceeds "
            f"the stability bound of {_variant(optimizer)}, {bound:.3g} (lr < {bound:.3g}/lambda = "
            f"{bound / eigenvalue:.3g}): the error along the top curvature direction grows every step{clip_note}"
            f"{excess}{assumed_optimizer(ctx)}",
            location=site.location,
            fix=Fix(f"use {lr_name(optimizer)} <= {format_lr(safe_lr)}, or clip gradients at gradient_clip_val = "
                    f"{_containing_clip(optimizer, eigenvalue, step.loss):.2g}",
                    site.with_lr(safe_lr, optimizer.name)),
            severity=Severity.INFO if bounded else _severity(ratio, strong, clip),
            weight=_weight(ratio, strong) * (CLIPPED_WEIGHT_FACTOR if clip else 1.0),
        )


    @staticmethod
    def _without_output_layer(ctx: RuleContext, step, invariant: frozenset) -> float | None:
        """The top eigenvalue with the output layer held still too, when the loss is a
        cross-entropy and the model has an output layer not already held; else None."""
        output = ctx.output_weights() - invariant
        if not output or not cross_entropy_loss(ctx.trace):
            return None
        return _top_eigenvalue(ctx, step.gradient, invariant | output)


def _severity(ratio: float, strong: float, clip: float | None) -> Severity:
    if clip:
        return Severity.INFO
    return Severity.ERROR if ratio >= ERROR_MARKS * strong else Severity.WARNING


def _peak_note(optimizer) -> str:
    return f" ({optimizer.schedule})" if optimizer.peak_lr is not None else ""


def _max_clipped_step(optimizer, clip: float) -> float:
    """The longest step clipping allows: lr * clip, over (1 - momentum) once momentum builds up."""
    return optimizer.checked_lr * clip / (1 - min(optimizer.momentum, MAX_MOMENTUM))


def _clipped_loss_jump(optimizer, clip: float | None, eigenvalue: float) -> float:
    """The largest loss increase one clipped step can cause along the top direction."""
    return eigenvalue / 2 * _max_clipped_step(optimizer, clip) ** 2 if clip else math.inf


def _containing_clip(optimizer, eigenvalue: float, loss: float) -> float:
    """The clip value whose largest loss jump equals the initial loss."""
    return math.sqrt(2 * loss / eigenvalue) / _max_clipped_step(optimizer, 1.0)


def _variant(optimizer) -> str:
    if not optimizer.momentum:
        return optimizer.name
    kind = "Nesterov momentum" if optimizer.nesterov else "momentum"
    return f"{optimizer.name} with {kind} {optimizer.momentum:g}"


def _top_eigenvalue(ctx: RuleContext, gradient, fixed: frozenset) -> float:
    if ctx.thorough:
        return ctx.top_eigenvalue(THOROUGH_ITERATIONS, restarts=THOROUGH_RESTARTS, start=gradient, fixed=fixed)
    return ctx.top_eigenvalue(ITERATIONS, start=gradient, fixed=fixed)


def _weight(ratio: float, strong: float) -> float:
    """0.3 just above the bound, rising to 0.65 at the divergence mark `strong`; 0.75-0.9 past it."""
    if ratio < strong:
        return 0.3 + 0.35 * math.log(ratio) / math.log(strong)
    return min(0.9, 0.75 + 0.15 * math.log10(ratio / strong))
