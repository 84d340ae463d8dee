"""GL601 first-update-too-large."""

from __future__ import annotations

import math

from gradlint.rule import (
    Rule, RuleContext, Fix, Severity, Stage, assumed_optimizer, clipping_note, first_update_ratios, format_lr,
    lr_name, warmup_hint,
)

# ||update|| / ||W|| of the first optimizer step. cs231n's rule of thumb is ~1e-3 per step;
# docs/theory.md D3 puts the no-warmup Transformer failures of G5 at first-step ratios >= 0.083
# (Post-LN, 12 layers), >= 0.14 (Post-LN, 6) and >= 0.28 (Pre-LN, 6), while healthy setups sit
# at 0.02-0.05 (AdamW 1e-3 on default-init layers of fan-in 100-3000: lr * sqrt(3 fan_in)).
# D3's proposed 1e-2 warning would flag all of those, so the warning starts at its "high" mark.
RATIO_WARNING = 0.1
# SGD's relative step is lr * ||g|| / ||W||: it shrinks as the gradient does, while Adam keeps
# stepping ~lr per entry for its first ~1/(1 - beta2) steps. The classifier head of a healthy SGD
# setup (LSTM, lr 0.5, the PyTorch word-LM recipe scale) takes ~0.1 at the first step.
SGD_RATIO_WARNING = 0.3
# An update as large as the weight itself: the first step overwrites the layer's initialization.
RATIO_ERROR = 1.0
# The risk feature counts decades above this ratio (cs231n's healthy ~1e-3 per step).
RATIO_FLOOR = 1e-3


class FirstUpdateTooLarge(Rule):
    """
    ## What it does
    Runs the configured optimizer's first step (on copies of the parameters, with
    `gradient_clip_val` applied) and flags weight tensors whose update is large relative to
    the weight: ||update|| / ||W|| >= 0.1 warns for adaptive optimizers (0.3 for SGD, whose
    step shrinks with the gradient), >= 1 is an error. It reports the largest ratio and how
    many tensors exceed the threshold. Biases, norm gains and zero-initialized tensors are
    exempt. Under an LR schedule the step is taken at the schedule's peak lr.

    ## Why is this bad?
    A healthy step changes each weight by about 0.1% (cs231n). Adam's first step is about
    lr * sign(g) in every entry, so its relative size is lr / RMS(W) = lr * sqrt(3 * fan_in)
    for PyTorch's default init: lr 0.01 on a 1024-wide layer rewrites 55% of the weight in one
    step, before the second-moment estimate has settled. Transformers trained without warmup
    fail once this ratio passes ~0.1 (measured on 6-12 layer encoders, docs/theory.md G5; Xiong
    et al. 2020 describe the mechanism). SGD's ratio is lr * ||g|| / ||W|| and grows with the
    gradient norm.

    ## Example
    ```python
    def configure_optimizers(model):
        return torch.optim.Adam(model.parameters(), lr=0.1)   # first step = 280% of fc1.weight
    ```

    ## Use instead
    ```python
    def configure_optimizers(model):
        return torch.optim.Adam(model.parameters(), lr=1e-3)  # 2.8%; or keep lr and add warmup
    ```

    ## References
    - Karpathy, CS231n notes, "ratio of weights:updates" (~1e-3)
    - Liu et al. 2019, On the Variance of the Adaptive Learning Rate and Beyond (RAdam), arXiv:1908.03265
    - Xiong et al. 2020, On Layer Normalization in the Transformer Architecture, arXiv:2002.04745
    - docs/theory.md, D3 (Adam's first step, the no-warmup failures of G5) and D6 (warmup length)
    """

    code = "GL601"
    name = "first-update-too-large"
    family = "optimizer"
    severity = Severity.WARNING
    stages = frozenset({Stage.PROBE})
    reads_lr = True

    INVALID = ('''
import torch
import torch.nn as nn

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(256, 64)  # expect: GL601
        self.fc2 = nn.Linear(64, 10)

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(x)))

def build_model():
    return Net()

def configure_optimizers(model):
    return torch.optim.Adam(model.parameters(), lr=0.1)
''',)
    VALID = ('''
import torch
import torch.nn as nn

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(256, 64)
        self.fc2 = nn.Linear(64, 10)

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(x)))

def build_model():
    return Net()

def configure_optimizers(model):
    return torch.optim.Adam(model.parameters(), lr=1e-3)
''',)

    def check(self, ctx: RuleContext):
        if ctx.spec.optimizer is not None and ctx.spec.optimizer.checked_lr <= 0:
            return  # lr 0 takes no step: nothing moves, so there is no update to measure
        step = ctx.first_step()
        if step is None:
            return
        ratios = first_update_ratios(step)
        if ratios:  # for the risk model: decades of the largest relative update (0 at 1e-3 and below,
            # 0 too when no weight moves on the first step: ratio 0 has no logarithm)
            ctx.record("first_update_ratio", math.log10(max(ratios[0].ratio, RATIO_FLOOR)) + 3)
        threshold = RATIO_WARNING if ctx.spec.optimizer.is_adaptive else SGD_RATIO_WARNING
        large = [r for r in ratios if r.ratio >= threshold]
        if not large:
            return
        worst = large[0]
        optimizer = ctx.spec.optimizer
        others = (f"; {len(large) - 1} more of {len(ratios)} weight tensors exceed {threshold:g}"
                  if len(large) > 1 else "")
        # The first step of SGD, momentum and Adam(W) is linear in lr: this lr puts the worst ratio at the threshold.
        safe_lr = optimizer.checked_lr * threshold / worst.ratio
        site = ctx.optimizer_site()
        yield self.finding(
            ctx,
            f"the first {optimizer.describe()} step changes {worst.name} by {worst.ratio:.3g}x its norm "
            f"(update RMS {worst.update_rms:.3g} vs weight RMS {worst.weight_rms:.3g}){others}"
            f"{clipping_note(ctx, step)}{assumed_optimizer(ctx)}",
            module=worst.module,
            fix=Fix(f"lower {lr_name(optimizer)} to <= {format_lr(safe_lr)} (keeps every first update under {threshold:g}x its "
                    f"weight){warmup_hint(optimizer)}",
                    site.with_lr(safe_lr, optimizer.name)),
            severity=Severity.ERROR if worst.ratio >= RATIO_ERROR else Severity.WARNING,
            weight=_weight(worst.ratio, threshold),
        )


def _weight(ratio: float, threshold: float) -> float:
    """0.15 at the warning threshold, 0.7 at an update as large as the weight (log scale), up to
    0.85 at 10x the weight."""
    if ratio < RATIO_ERROR:
        return 0.15 + 0.55 * math.log(ratio / threshold) / math.log(RATIO_ERROR / threshold)
    return min(0.85, 0.7 + 0.15 * math.log10(ratio / RATIO_ERROR))
