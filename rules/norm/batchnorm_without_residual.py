"""GL404 batchnorm-without-residual."""

from __future__ import annotations

import math

from gradlint.rule import Rule, RuleContext, Fix, Severity, Stage, is_batch_norm, longest_run

# Growth of the gradient's mean square from the last to the first BatchNorm of a stack with no
# skip connection: the signal-propagation bounds of docs/theory.md A1 (1e2 warn, 1e4 error), which
# ReLU stacks reach at 12 and 24 BatchNorm layers (1.47 per layer, docs/theory.md A5).
GROWTH_WARNING = 1e2
GROWTH_ERROR = 1e4
# Fewer BatchNorm layers in a row than this are a normal CNN (VGG-11-BN has 8); the probe's
# small batch makes the measured factor noisy over a few layers.
MIN_LAYERS = 6
# Per-layer growth of the gradient's mean square in BatchNorm stacks without skips, by the
# activation after the norm: Yang et al. 2019 give pi/(pi-1) = 1.467 for ReLU (docs/theory.md A5
# and G2 measured 1.468, tanh 1.19, identity 1.01 at batch 128).
PREDICTED_RATE = {"relu": math.pi / (math.pi - 1), "leaky_relu": math.pi / (math.pi - 1), "tanh": 1.19}
LINEAR_RATE = 1.01


class BatchNormWithoutResidual(Rule):
    """
    ## What it does
    Flags stacks of 6 or more BatchNorm-normalized layers with no residual connection, when the
    measured gradient grows by more than 100x in mean square from the last BatchNorm layer to
    the first.

    ## Why is this bad?
    BatchNorm does not remove gradient explosion in networks without skip connections; it
    causes it. At initialization the gradient's mean square grows by a constant factor per
    layer going backward, pi/(pi-1) = 1.47 with ReLU, and no choice of weight scale or
    nonlinearity removes it (Yang et al. 2019). A 24-layer ReLU stack starts with the first
    layers' gradients 1e4 times larger than the last ones'; the first updates of those layers
    are then far too large. Residual connections (ResNets) keep the gradient bounded.

    ## Example
    ```python
    self.features = nn.Sequential(*[nn.Sequential(nn.Linear(64, 64), nn.BatchNorm1d(64), nn.ReLU())
                                    for _ in range(24)])
    ```

    ## Use instead
    ```python
    class Block(nn.Module):   # x + f(x): the skip keeps the gradient bounded
        def forward(self, x):
            return x + self.act(self.bn(self.fc(x)))
    ```

    ## References
    - Yang, Pennington, Rao, Sohl-Dickstein, Schoenholz 2019, A Mean Field Theory of Batch
      Normalization, arXiv:1902.08129
    - Philipp, Song, Carbonell 2018, The exploding gradient problem demystified, arXiv:1712.05577
    - He et al. 2016, Deep Residual Learning for Image Recognition, arXiv:1512.03385
    - docs/theory.md, A5 (the growth rate per activation) and G2 (its measurement)
    """

    code = "GL404"
    name = "batchnorm-without-residual"
    family = "norm"
    severity = Severity.WARNING
    stages = frozenset({Stage.PROBE})

    INVALID = ('''
import torch
import torch.nn as nn

def build_model():
    layers = [nn.Linear(16, 32)]
    for _ in range(20):
        layers += [nn.Linear(32, 32), nn.BatchNorm1d(32), nn.ReLU()]  # expect: GL404
    return nn.Sequential(*layers, nn.Linear(32, 10))

def example_inputs():
    return (torch.randn(32, 16),)
''',)
    VALID = ('''
import torch
import torch.nn as nn

class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(32, 32)
        self.bn = nn.BatchNorm1d(32)

    def forward(self, x):
        return x + torch.relu(self.bn(self.fc(x)))

def build_model():
    return nn.Sequential(nn.Linear(16, 32), *[Block() for _ in range(20)], nn.Linear(32, 10))

def example_inputs():
    return (torch.randn(32, 16),)
''',)

    def check(self, ctx: RuleContext):
        stack = longest_run(ctx.trace, counts=is_batch_norm, breaks=lambda node: node.residual)
        if len(stack) < MIN_LAYERS:
            return
        growth = _measured_growth(ctx, stack)
        predicted = math.prod(_predicted_rate(ctx, node) for node in stack[:-1])
        if growth is None:
            growth = predicted  # no gradient reached the norms: fall back on the theory
        if growth <= GROWTH_WARNING:
            return
        per_layer = growth ** (1 / (len(stack) - 1))
        first, last = stack[0], stack[-1]
        yield self.finding(
            ctx,
            f"{len(stack)} BatchNorm layers with no skip connection ({first.path} -> {last.path}): the gradient's "
            f"mean square grows {per_layer:.3g}x per layer backward, {growth:.3g}x from the last to the first "
            f"(mean-field prediction {predicted:.3g}x)",
            module=first.path,
            fix=Fix("wrap each layer-BatchNorm-activation group in a residual block (x = x + f(x)), or drop the "
                    "BatchNorms for a critical init in a shallower stack",
                    "x = x + block(x)  # in forward(), for each layer-BatchNorm-activation group"),
            severity=Severity.ERROR if growth >= GROWTH_ERROR else Severity.WARNING,
            weight=min(0.9, 0.15 * math.log10(growth)),
        )


def _measured_growth(ctx: RuleContext, stack) -> float | None:
    """(gradient RMS at the first norm's output / at the last's) squared, from the probe."""
    grads = ctx.probe.output_grad_rms
    first, last = grads.get(stack[0].index), grads.get(stack[-1].index)
    if not first or not last:
        return None
    return (first / last) ** 2


def _predicted_rate(ctx: RuleContext, norm) -> float:
    activation = ctx.trace.next_activation(norm)
    name = activation.name.lower() if activation is not None else ""
    for key, rate in PREDICTED_RATE.items():
        if name.startswith(key):
            return rate
    return LINEAR_RATE
