"""GL504 gradient-scale-coefficient."""

from __future__ import annotations

import math

from gradlint.rule import (
    Rule, RuleContext, Severity, Stage, backward_profile, depth_fix, relative_sensitivities, sci,
)

# log10 GSC(first, last) > 2 warning, > 4 error: docs/theory.md A4 (gradlint's own thresholds,
# to calibrate); the same decades as the end-to-end gain thresholds of docs/theory.md A1.
# Healthy models measured here stay below 10 (BatchNorm ResNet-34-like 9.1, Pre-LN Transformer
# 1.3, He-initialized MLP 4.3).
GSC_WARNING = 1e2
GSC_ERROR = 1e4
# Lower than GL502's weights: the two often see the same cause and the risk is a noisy-OR.
WEIGHT_AT_WARNING, WEIGHT_PER_DECADE, WEIGHT_MAX = 0.2, 0.1, 0.6


class GradientScaleCoefficient(Rule):
    """
    ## What it does
    Computes the gradient scale coefficient (GSC) of every weighted layer at initialization,
    from one forward and backward pass: ||dL/dh_k|| * ||h_k||, the response of the loss to a
    relative change of layer k's output, divided by the same quantity at the output layer.
    Flags the model when some layer's GSC exceeds 100 (warning) or 10,000 (error).

    ## Why is this bad?
    Raw gradient norms change when a layer is rescaled; the GSC does not, so it measures the
    explosion that no choice of per-layer scale removes. A GSC of 1,000 at the first layer
    means the same relative weight update changes the loss 1,000 times more there than at the
    output: a learning rate small enough for the first layers leaves the last ones frozen, one
    large enough for the last ones blows up the first. Philipp et al. show that batch-,
    layer-normalized, SELU and tanh MLPs without skip connections all have exponentially
    growing GSC, and that residual connections remove it. (Each side is divided by the square
    root of the positions per sample, so wide feature maps are not mistaken for explosion.)

    ## Example
    ```python
    self.blocks = nn.ModuleList(
        nn.Sequential(nn.Linear(64, 64), nn.BatchNorm1d(64), nn.ReLU()) for _ in range(30))
    ...
    for block in self.blocks:
        x = block(x)
    ```

    ## Use instead
    ```python
    for block in self.blocks:
        x = x + block(x)
    ```

    ## References
    - Philipp, Song & Carbonell 2018, The exploding gradient problem demystified, arXiv:1712.05577
    - Yang et al. 2019, A Mean Field Theory of Batch Normalization, arXiv:1902.08129
    - docs/theory.md, A4 (the gradient scale coefficient)
    """

    code = "GL504"
    name = "gradient-scale-coefficient"
    family = "probe"
    severity = Severity.WARNING
    stages = frozenset({Stage.PROBE})

    INVALID = ('''
import torch
import torch.nn as nn

class BatchNormMLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.Linear(64, 64), nn.BatchNorm1d(64), nn.ReLU()) for _ in range(30))  # expect: GL504
        self.head = nn.Linear(64, 10)

    def forward(self, x):
        for block in self.blocks:
            x = block(x)
        return self.head(x)

def build_model():
    return BatchNormMLP()

def example_inputs():
    return (torch.randn(16, 64),)
''',)
    VALID = ('''
import torch
import torch.nn as nn

class BatchNormMLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.Linear(64, 64), nn.BatchNorm1d(64), nn.ReLU()) for _ in range(30))
        self.head = nn.Linear(64, 10)

    def forward(self, x):
        for block in self.blocks:
            x = x + block(x)
        return self.head(x)

def build_model():
    return BatchNormMLP()

def example_inputs():
    return (torch.randn(16, 64),)
''',)

    def check(self, ctx: RuleContext):
        obs = ctx.observed()
        # A layer whose output is exactly 0 on the batch (the zero-initialized last layer of a
        # Fixup or SkipInit branch, bias included) has no relative change for the loss to respond
        # to: its GSC is undefined, and as the last layer it would leave nothing to divide by.
        profile = tuple(layer for layer in backward_profile(obs) if layer.activation > 0)
        if len(profile) < 2:
            return
        gsc = relative_sensitivities(profile)
        worst = max(range(len(profile)), key=gsc.__getitem__)
        if gsc[worst] < GSC_WARNING:
            return
        layer, last = profile[worst], profile[-1]
        per_layer = gsc[worst] ** (1.0 / max(1, len(profile) - 1 - worst))
        message = (
            f"gradient scale coefficient {sci(gsc[worst])} at {layer.path}: a relative change of its output moves "
            f"the loss {sci(gsc[worst])}x more than the same relative change at {last.path} "
            f"({per_layer:.2g}x per layer over {len(profile) - 1 - worst} weighted layers)"
        )
        yield self.finding(
            ctx, message, module=layer.path, fix=depth_fix(ctx, obs, profile, exploding=True),
            severity=Severity.ERROR if gsc[worst] >= GSC_ERROR else Severity.WARNING,
            weight=_weight(gsc[worst]),
        )


def _weight(gsc: float) -> float:
    decades_above = math.log10(gsc) - math.log10(GSC_WARNING)
    return min(WEIGHT_MAX, WEIGHT_AT_WARNING + WEIGHT_PER_DECADE * decades_above)
