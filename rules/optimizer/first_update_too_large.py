"""GL601 first-update-too-large."""

from __future__ import annotations

import math
from dataclasses import replace

from gradlint.rule import (
    Rule, RuleContext, Fix, Severity, Stage, assumed_optimizer, clipping_note, first_update_ratios, format_lr,
    lr_name, warmed_up, warmup_hint,
)

# ||update|| / ||W|| of the first optimizer step. cs231n's rule of thumb is ~1e-3 per step;
# docs/theory.md D3 puts the no-warmup Transformer failures of G5 at first-step ratios >= 0.083
# (Post-LN, 12 layers), >= 0.14 (Post-LN, 6) and >= 0.28 (Pre-LN, 6), while healthy setups sit
# at 0.02-0.05 (AdamW 1e-3 on default-init layers of fan-in 100-3000: lr * sqrt(3 fan_in)).
# D3's proposed 1e-2 mark would flag all of those, so the finding starts at its "high" mark.
RATIO_NOTE = 0.1
# SGD's relative step is lr * ||g|| / ||W||: it shrinks as the gradient does, while Adam keeps
# stepping ~lr per entry for its first ~1/(1 - beta2) steps.
SGD_RATIO_NOTE = 0.3
# An update as large as the weight itself: the first step overwrites the layer's initialization.
AS_LARGE = 1.0
# Severities, from what the flagged corpus cases did (BENCHMARKS.md, "Severities"): below an update
# as large as the weight, 12 of 34 failed to train, fewer than a case drawn at random (an info);
# from 1x to 10x, 10 of 15 (a warning); from 10x, 12 of 13 (an error).
RATIO_WARNING, RATIO_ERROR = AS_LARGE, 10.0
# The risk feature counts decades above this ratio (cs231n's healthy ~1e-3 per step).
RATIO_FLOOR = 1e-3


class FirstUpdateTooLarge(Rule):
    """
    ## What it does
    Runs the configured optimizer's first step (on copies of the parameters, with
    `gradient_clip_val` applied) and flags weight tensors whose update is large relative to
    the weight: ||update|| / ||W|| >= 0.1 is an info for adaptive optimizers (0.3 for SGD, whose
    step shrinks with the gradient), an update as large as the weight a warning, ten times it
    an error (the severities the corpus measured). It reports the largest ratio and how many
    tensors exceed the threshold. Under an LR schedule the step is taken at the schedule's
    peak lr; a schedule that warms up over at least 2/(1-beta2) steps (100 without Adam's
    betas) takes its first steps far lower, and below an update as large as the weight the
    first step is measured at the schedule's starting lr. Exempt, because their relative
    update says nothing about divergence: biases, norm gains and zero-initialized tensors;
    weights whose scale a normalization after them divides out (a convolution before
    BatchNorm: the step only turns them, and grows their norm, which shrinks the next steps);
    and, under SGD, the output layer below ten times its weight (the loss is convex in it:
    GL602's curvature bound is the exact test). A residual branch's last layer
    initialized below the branch's other layers (GPT-2's 1/sqrt(2 n_layer) projections) is
    measured against the branch's scale, not its own small one.

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
''', '''
# A norm before each convolution, not after: the convolutions' scale matters, and Adam's first step
# rewrites a fifth of the second one.
import torch
import torch.nn as nn

def build_model():
    return nn.Sequential(nn.BatchNorm2d(3), nn.Conv2d(3, 16, 3, padding=1, bias=False), nn.ReLU(),
                         nn.BatchNorm2d(16), nn.Conv2d(16, 32, 3, padding=1, bias=False), nn.ReLU(),  # expect: GL601
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10))

def example_inputs():
    return (torch.randn(16, 3, 16, 16),)

def configure_optimizers(model):
    return torch.optim.Adam(model.parameters(), lr=1e-2)
''', '''
# Every weight of each branch starts small: the first Adam step is 18% of them.
import math
import torch
import torch.nn as nn

class Block(nn.Module):
    def __init__(self, width, blocks):
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.fc = nn.Linear(width, width)  # expect: GL601
        self.proj = nn.Linear(width, width)
        nn.init.normal_(self.fc.weight, std=0.02 / math.sqrt(2 * blocks))
        nn.init.normal_(self.proj.weight, std=0.02 / math.sqrt(2 * blocks))

    def forward(self, x):
        return x + self.proj(torch.relu(self.fc(self.norm(x))))

def build_model():
    return nn.Sequential(nn.Linear(32, 64), *[Block(64, 8) for _ in range(8)], nn.LayerNorm(64), nn.Linear(64, 10))

def configure_optimizers(model):
    return torch.optim.Adam(model.parameters(), lr=1e-3)
''', '''
# A 20-step warmup is shorter than the 2/(1 - beta2) = 200 steps Adam's moments need: the peak is checked.
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
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2, betas=(0.9, 0.99))
    warmup = torch.optim.lr_scheduler.LinearLR(optimizer, start_factor=0.01, total_iters=20)
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": warmup, "interval": "step"}}
''', '''
# SGD at lr 80: the output layer's first update is ten times the layer itself.
import torch
import torch.nn as nn

def build_model():
    return nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))  # expect: GL601

def example_inputs():
    return (torch.randn(32, 32),)

def configure_optimizers(model):
    return torch.optim.SGD(model.parameters(), lr=80.0)
''')
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
''', '''
# BatchNorm after each convolution divides their scale out: the same step only turns them.
import torch
import torch.nn as nn

def build_model():
    return nn.Sequential(nn.Conv2d(3, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU(),
                         nn.Conv2d(16, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10))

def example_inputs():
    return (torch.randn(16, 3, 16, 16),)

def configure_optimizers(model):
    return torch.optim.Adam(model.parameters(), lr=1e-2)
''', '''
# GPT-2's init: only each branch's last layer starts at 1/sqrt(2 x blocks) of the others, and is
# measured against the branch's scale.
import math
import torch
import torch.nn as nn

class Block(nn.Module):
    def __init__(self, width, blocks):
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.fc = nn.Linear(width, width)
        self.proj = nn.Linear(width, width)
        nn.init.normal_(self.fc.weight, std=0.02)
        nn.init.normal_(self.proj.weight, std=0.02 / math.sqrt(2 * blocks))

    def forward(self, x):
        return x + self.proj(torch.relu(self.fc(self.norm(x))))

def build_model():
    return nn.Sequential(nn.Linear(32, 64), *[Block(64, 8) for _ in range(8)], nn.LayerNorm(64), nn.Linear(64, 10))

def configure_optimizers(model):
    return torch.optim.Adam(model.parameters(), lr=1e-3)
''', '''
# A 250-step warmup: the first steps are taken at 1% of the peak lr.
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
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2, betas=(0.9, 0.99))
    warmup = torch.optim.lr_scheduler.LinearLR(optimizer, start_factor=0.01, total_iters=250)
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": warmup, "interval": "step"}}
''', '''
# SGD at lr 4: the output layer's first update is 0.59x its norm, a question of curvature for GL602
# (the loss is convex in that layer); the hidden layers' stay under 0.3.
import torch
import torch.nn as nn

def build_model():
    return nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))

def example_inputs():
    return (torch.randn(32, 32),)

def configure_optimizers(model):
    return torch.optim.SGD(model.parameters(), lr=4.0)
''')

    def check(self, ctx: RuleContext):
        optimizer = ctx.spec.optimizer
        if optimizer is not None and optimizer.checked_lr <= 0:
            return  # lr 0 takes no step: nothing moves, so there is no update to measure
        step = ctx.first_step()
        if step is None:
            return
        # At the checked lr (a schedule's peak). Weights a normalization divides the scale of out
        # are left out, and a residual branch's down-scaled last layer is measured against its
        # branch's scale (measure.scale): neither ratio says anything about divergence.
        ratios = first_update_ratios(step, ctx.scale_invariant_weights(), ctx.downscaled_residual_outputs())
        if ratios:  # for the risk model: decades of the largest relative update (0 at 1e-3 and below,
            # 0 too when no weight moves on the first step: ratio 0 has no logarithm)
            ctx.record("first_update_ratio", math.log10(max(ratios[0].ratio, RATIO_FLOOR)) + 3)
        threshold = RATIO_NOTE if optimizer.is_adaptive else SGD_RATIO_NOTE
        if warmed_up(optimizer):
            yield from self._under_warmup(ctx, step, ratios, threshold)
            return
        large = _flagged(ctx, ratios, threshold)
        if not large:
            return
        worst = large[0]
        # The first step of SGD, momentum and Adam(W) is linear in lr: this lr puts the worst ratio at the threshold.
        safe_lr = optimizer.checked_lr * threshold / worst.ratio
        site = ctx.optimizer_site()
        yield self.finding(
            ctx,
            f"the first {optimizer.describe()} step changes {_changes(worst)}{_others(large, ratios, threshold)}"
            f"{clipping_note(ctx, step)}{assumed_optimizer(ctx)}",
            module=worst.module,
            fix=Fix(f"lower {lr_name(optimizer)} to <= {format_lr(safe_lr)} (keeps every first update under {threshold:g}x its "
                    f"weight){warmup_hint(optimizer)}",
                    site.with_lr(safe_lr, optimizer.name)),
            severity=_severity(worst.ratio),
            weight=_weight(worst.ratio, threshold),
        )

    def _under_warmup(self, ctx: RuleContext, step, ratios: list, threshold: float):
        """A schedule that warms up (measure.optimizer.warmed_up) takes its first steps at its
        starting lr, while the optimizer's statistics settle: the small-update note is about those
        steps. At the peak, an update as large as the weight is still a warning (10x, an error),
        whatever came before it."""
        optimizer = ctx.spec.optimizer
        factor = optimizer.lr / optimizer.checked_lr  # the first step is linear in lr
        at_peak = _flagged(ctx, ratios, RATIO_WARNING)
        if at_peak:
            worst = at_peak[0]
            safe_lr = optimizer.checked_lr * threshold / worst.ratio
            yield self.finding(
                ctx,
                f"at {optimizer.schedule} (lr {optimizer.checked_lr:g}) a {optimizer.name} step changes "
                f"{_changes(worst)}{_others(at_peak, ratios, RATIO_WARNING)}: an update as large as the weight, "
                f"which the warmup before it does not prevent{clipping_note(ctx, step)}",
                module=worst.module,
                fix=f"lower {lr_name(optimizer)} to <= {format_lr(safe_lr)} (keeps every update under "
                    f"{threshold:g}x its weight)",
                severity=_severity(worst.ratio),
                weight=_weight(worst.ratio, threshold),
            )
            return
        first = sorted((replace(r, ratio=r.ratio * factor, update_rms=r.update_rms * factor) for r in ratios),
                       key=lambda r: -r.ratio)
        large = _flagged(ctx, first, threshold)
        if not large:
            return
        worst = large[0]
        yield self.finding(
            ctx,
            f"the first {optimizer.name} step, at the {optimizer.scheduler}'s starting lr {optimizer.lr:g}, changes "
            f"{_changes(worst)}{_others(large, first, threshold)}{clipping_note(ctx, step)}",
            module=worst.module,
            fix=f"start the warmup at lr <= {format_lr(optimizer.lr * threshold / worst.ratio)} (keeps every first "
                f"update under {threshold:g}x its weight)",
            severity=_severity(worst.ratio),
            weight=_weight(worst.ratio, threshold),
        )


def _flagged(ctx: RuleContext, ratios: list, threshold: float) -> list:
    """The ratios at or above `threshold`. Under SGD the output layer's below the error mark are left
    to GL602: the loss is convex in that layer, and the curvature bound is the exact test of its
    step (measure.scale)."""
    heads = frozenset() if ctx.spec.optimizer.is_adaptive else ctx.output_weights()
    return [r for r in ratios if r.ratio >= threshold and (r.name not in heads or r.ratio >= RATIO_ERROR)]


def _severity(ratio: float) -> Severity:
    if ratio >= RATIO_ERROR:
        return Severity.ERROR
    return Severity.WARNING if ratio >= RATIO_WARNING else Severity.INFO


def _changes(ratio) -> str:
    """`fc3.weight by 27.7x its norm (update RMS 5.45 vs weight RMS 0.197)`, or against its branch's scale."""
    if ratio.initial_rms is None:
        return (f"{ratio.name} by {ratio.ratio:.3g}x its norm (update RMS {ratio.update_rms:.3g} vs weight RMS "
                f"{ratio.weight_rms:.3g})")
    return (f"{ratio.name} by {ratio.ratio:.3g}x its residual branch's scale (update RMS {ratio.update_rms:.3g} vs "
            f"RMS {ratio.weight_rms:.3g} at the branch's init scale; it starts at {ratio.initial_rms:.3g})")


def _others(large: list, ratios: list, threshold: float) -> str:
    return f"; {len(large) - 1} more of {len(ratios)} weight tensors exceed {threshold:g}" if len(large) > 1 else ""


def _weight(ratio: float, threshold: float) -> float:
    """0.15 at the note's threshold, 0.7 at an update as large as the weight (log scale), up to
    0.85 at 10x the weight. (The risk's calibration was fitted on these weights: they do not
    follow the severities.)"""
    if ratio < AS_LARGE:
        return 0.15 + 0.55 * math.log(ratio / threshold) / math.log(AS_LARGE / threshold)
    return min(0.85, 0.7 + 0.15 * math.log10(ratio / AS_LARGE))
