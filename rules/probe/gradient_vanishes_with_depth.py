"""GL503 gradient-vanishes-with-depth."""

from __future__ import annotations

import math

from gradlint.rule import Rule, RuleContext, Severity, Stage, backward_profile, depth_fix, growth, sci

# ||delta_first|| / ||delta_last|| below this: the error decade of docs/theory.md A1 (chi_hat^L
# outside [1e-4, 1e4]); AUTOTRAINER's vanish ratio is 1e-3 on weight gradients (its
# gradient_message_summary; docs/theory.md, T2).
GAIN_VANISHING = 1e-4
# Vanishing stalls training but does not make it diverge: the risk weight stays small.
WEIGHT_MIN, WEIGHT_MAX = 0.05, 0.15


class GradientVanishesWithDepth(Rule):
    """
    ## What it does
    Measures the backward signal delta = dloss/dh at the output of every weighted layer in one
    forward and backward pass at initialization and flags the model when delta at the first
    layer is below 1e-4 times delta at the last one. Reports the fitted per-layer factor
    chi_hat, the layer where the signal shrinks most and the likely cause.

    ## Why is this bad?
    The first layers then receive almost no gradient and stay at their random
    initialization: the network trains as if it were much shallower, or not at all. It does
    not make the loss diverge, so it weighs little in the explosion risk. The usual cause is
    an initialization below the critical scale: PyTorch's default `nn.Linear`/`nn.Conv`
    init has Var(W) = 1/(3 fan_in), which before a ReLU gives chi_1 = 1/6 per layer
    (Poole et al. 2016; He et al. 2015).

    ## Example
    ```python
    self.layers = nn.ModuleList(nn.Linear(32, 32) for _ in range(14))   # default init, ReLU
    ```

    ## Use instead
    ```python
    for layer in self.layers:
        nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")
    ```

    ## References
    - Glorot & Bengio 2010, Understanding the difficulty of training deep feedforward neural networks (AISTATS)
    - He et al. 2015, Delving Deep into Rectifiers, arXiv:1502.01852
    - Schoenholz et al. 2017, Deep Information Propagation, arXiv:1611.01232
    - docs/theory.md, A1 (PyTorch's default init, the decade thresholds) and F1 (fixes by cause)
    """

    code = "GL503"
    name = "gradient-vanishes-with-depth"
    family = "probe"
    severity = Severity.WARNING
    stages = frozenset({Stage.PROBE})

    INVALID = ('''
import torch
import torch.nn as nn

class DeepMLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(32, 32) for _ in range(14))  # expect: GL503

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
        self.layers = nn.ModuleList(nn.Linear(32, 32) for _ in range(14))
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
        if trend is None or trend.gain >= GAIN_VANISHING:
            return
        steepest, factor = trend.steepest(growing=False)
        if f"{trend.per_layer:.2g}" == "1":  # "shrinks to 1x per layer" would say nothing: a few layers make the drop
            message = (
                f"||dL/dh|| at {trend.first.path} is {sci(trend.gain)}x that at {trend.last.path}, over "
                f"{len(trend.layers)} weighted layers but not steadily (the fitted decay per layer, chi_hat = "
                f"{trend.chi:.3g}, is ~1): the largest drop is back through {steepest.path} ({factor:.2g}x)"
            )
        else:
            message = (
                f"the gradient dloss/dh shrinks to {trend.per_layer:.2g}x per layer going backward (chi_hat = "
                f"{trend.chi:.3g}) over {len(trend.layers)} weighted layers: ||dL/dh|| at {trend.first.path} is "
                f"{sci(trend.gain)}x that at {trend.last.path}; the largest drop is back through {steepest.path} "
                f"({factor:.2g}x)"
            )
        yield self.finding(ctx, message, module=steepest.path, fix=depth_fix(ctx, obs, trend.layers, exploding=False),
                           weight=_weight(trend.gain))


def _weight(gain: float) -> float:
    """0.05 at the threshold, rising by 0.025 per decade below it, at most 0.15."""
    decades_below = math.log10(GAIN_VANISHING) - math.log10(gain)
    return min(WEIGHT_MAX, WEIGHT_MIN + 0.025 * decades_below)
