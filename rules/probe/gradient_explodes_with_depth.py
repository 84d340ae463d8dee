"""GL502 gradient-explodes-with-depth."""

from __future__ import annotations

import math

from gradlint.rule import Rule, RuleContext, Severity, Stage, backward_profile, depth_fix, growth, sci

# End-to-end gain ||delta_first|| / ||delta_last|| of the backward signal: docs/theory.md A1
# flags chi_hat^L outside [1e-2, 1e2] (warning) and [1e-4, 1e4] (error); AUTOTRAINER flags a
# first/last weight-gradient ratio above 70 (its gradient_message_summary; docs/theory.md, T2).
GAIN_WARNING = 1e2
GAIN_ERROR = 1e4


class GradientExplodesWithDepth(Rule):
    """
    ## What it does
    Measures the backward signal delta = dloss/dh at the output of every weighted layer
    (Linear, Conv, Embedding, RNN, attention) in one forward and backward pass at
    initialization, fits its per-layer growth rate chi_hat (the slope of log ||delta||^2
    against layer index) and flags the model when delta at the first layer is more than
    100x (warning) or 10,000x (error) delta at the last one. Reports the layer where it
    grows most and the likely cause.

    ## Why is this bad?
    The first layers' weight gradients are delta times their input, so when delta grows by a
    constant factor per layer the first layers receive updates orders of magnitude larger
    than the last ones: the first optimizer steps throw them far from initialization and the
    loss diverges. The factor per layer is chi_1 = Var(W) * fan_in * E[phi'^2]: above 1 the
    gradient explodes exponentially with depth (Poole et al. 2016; Schoenholz et al. 2017).
    The rule measures delta rather than weight-gradient norms because for ReLU networks the
    forward and backward growth cancel in ||dL/dW||.

    ## Example
    ```python
    self.layers = nn.ModuleList(nn.Linear(32, 32) for _ in range(8))
    for layer in self.layers:
        nn.init.normal_(layer.weight, std=1.0)   # chi_1 = 16 before a ReLU
    ```

    ## Use instead
    ```python
    for layer in self.layers:
        nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")   # chi_1 = 1
    ```

    ## References
    - Poole et al. 2016, Exponential expressivity in deep neural networks through transient chaos, arXiv:1606.05340
    - Schoenholz et al. 2017, Deep Information Propagation, arXiv:1611.01232
    - He et al. 2015, Delving Deep into Rectifiers, arXiv:1502.01852
    - Zhang et al. 2021, AUTOTRAINER (ICSE'21): first/last gradient ratio > 70 flags explosion
    - docs/theory.md, A1 (why delta, the decade thresholds), F1 (fixes by cause) and T2 (AUTOTRAINER's ratio)
    """

    code = "GL502"
    name = "gradient-explodes-with-depth"
    family = "probe"
    severity = Severity.WARNING
    stages = frozenset({Stage.PROBE})

    INVALID = ('''
import torch
import torch.nn as nn

class DeepMLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(32, 32) for _ in range(8))  # expect: GL502
        for layer in self.layers:
            nn.init.normal_(layer.weight, std=1.0)

    def forward(self, x):
        for layer in self.layers[:-1]:
            x = torch.relu(layer(x))
        return self.layers[-1](x)

def build_model():
    return DeepMLP()
''',)
    VALID = ('''
import torch
import torch.nn as nn

class DeepMLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(32, 32) for _ in range(8))
        for layer in self.layers:
            nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")

    def forward(self, x):
        for layer in self.layers[:-1]:
            x = torch.relu(layer(x))
        return self.layers[-1](x)

def build_model():
    return DeepMLP()
''',)

    def check(self, ctx: RuleContext):
        obs = ctx.observed()
        trend = growth(backward_profile(obs))
        if trend is None or trend.gain < GAIN_WARNING:
            return
        steepest, factor = trend.steepest(growing=True)
        if f"{trend.per_layer:.2g}" == "1":  # "grows 1x per layer" would say nothing: a few layers make the gain
            message = (
                f"||dL/dh|| at {trend.first.path} is {sci(trend.gain)}x that at {trend.last.path}, over "
                f"{len(trend.layers)} weighted layers but not steadily (the fitted growth per layer, chi_hat = "
                f"{trend.chi:.3g}, is ~1): the largest step is back through {steepest.path} ({factor:.2g}x)"
            )
        else:
            message = (
                f"the gradient dloss/dh grows {trend.per_layer:.2g}x per layer going backward (chi_hat = "
                f"{trend.chi:.3g}) over {len(trend.layers)} weighted layers: ||dL/dh|| at {trend.first.path} is "
                f"{sci(trend.gain)}x that at {trend.last.path}; the largest step is back through {steepest.path} "
                f"({factor:.2g}x)"
            )
        yield self.finding(
            ctx, message, module=steepest.path, fix=depth_fix(ctx, obs, trend.layers, exploding=True),
            severity=Severity.ERROR if trend.gain >= GAIN_ERROR else Severity.WARNING,
            weight=_weight(trend.gain),
        )


def _weight(gain: float) -> float:
    """0.3 at the warning threshold, 0.6 at the error threshold, 0.9 from 1e6 on."""
    return min(0.9, 0.3 + 0.15 * (math.log10(gain) - math.log10(GAIN_WARNING)))
