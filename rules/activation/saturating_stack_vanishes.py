"""GL302 saturating-stack-vanishes."""

from __future__ import annotations

import math

from gradlint.rule import Rule, RuleContext, Fix, SATURATING, Severity, Stage, init_call, weight_gain

# Stacks of at least this many tanh/sigmoid layers with nothing but weights between them
# (Glorot & Bengio 2010 saw saturation and stalled learning in 4-5 hidden-layer sigmoid nets).
MIN_STACK = 6
# Backward gain of the gradient's mean square over the stack. The bounds of docs/theory.md A1
# are 1e-2 (warning) and 1e-4 (error); as for ReLU chains (GL202) the first level is A1's error bound,
# which keeps a 24-layer Xavier tanh MLP (~2e-3, measured delta ratio ~1e-2) quiet. Unlike
# ReLU, bounded activations do not grow the forward signal to compensate in the weight
# gradients, so the levels are warning/error rather than info/warning. A stack of 6 sigmoid
# layers lands at ~3e-7 (sigmoid' <= 1/4), 8 at ~2e-11.
GAIN_WARNING = 1e-4
GAIN_ERROR = 1e-8


class SaturatingStackVanishes(Rule):
    """
    ## What it does
    Finds stacks of six or more tanh/sigmoid-like activations whose weighted layers are joined
    by nothing else (no normalization, no residual connection), multiplies the per-layer
    backward gains chi_1 = Var(W) * fan_in * E[phi'(h)**2] at the pre-activation scales
    measured in one forward pass, and flags stacks whose product falls below 1e-4. The
    message separates what the activation slopes and what the weights contribute.

    ## Why is this bad?
    Every saturating layer multiplies the gradient by its slope, which is at most 1/4 for
    the sigmoid and falls towards 0 in the tails of both: through a deep stack the gradient
    reaching the first layers vanishes and they stop learning (Hochreiter 1991; Glorot &
    Bengio 2010). Unlike ReLU stacks, no weight scale fixes a sigmoid stack for long: larger
    weights push the units into the tails.

    ## Example
    ```python
    layers = []
    for _ in range(8):
        layers += [nn.Linear(256, 256), nn.Sigmoid()]
    ```

    ## Use instead
    ```python
    for _ in range(8):
        layers += [nn.Linear(256, 256), nn.LayerNorm(256), nn.GELU()]
    ```

    ## References
    - Glorot & Bengio 2010, Understanding the difficulty of training deep feedforward neural networks, AISTATS
    - Hochreiter 1991, Untersuchungen zu dynamischen neuronalen Netzen (diploma thesis); Hochreiter et al. 2001, Gradient flow in recurrent nets
    - Schoenholz et al. 2017, Deep Information Propagation, arXiv:1611.01232
    - docs/theory.md, A1 (chi_1, and the thresholds for bounded activations)
    """

    code = "GL302"
    name = "saturating-stack-vanishes"
    family = "activation"
    severity = Severity.WARNING
    stages = frozenset({Stage.TRACE})

    INVALID = ('''
import torch.nn as nn

def build_model():
    layers = []
    for _ in range(8):
        layer = nn.Linear(32, 32)  # expect: GL302
        nn.init.xavier_normal_(layer.weight)
        layers += [layer, nn.Sigmoid()]
    return nn.Sequential(*layers, nn.Linear(32, 10))
''',)
    VALID = ('''
import torch.nn as nn

def build_model():
    layers = []
    for _ in range(8):
        layer = nn.Linear(32, 32)
        nn.init.xavier_normal_(layer.weight)
        layers += [layer, nn.Tanh()]
    return nn.Sequential(*layers, nn.Linear(32, 10))
''',)

    def check(self, ctx: RuleContext):
        for chain in ctx.signal_flow().chains():
            saturating = [name for name in chain.activation_names() if name in SATURATING]
            if len(saturating) < MIN_STACK:
                continue
            gain = chain.gain()
            if not gain < GAIN_WARNING:  # also NaN: a weight holding NaN/Inf has no scale (GL501)
                continue
            yield self._finding(ctx, chain, gain, len(saturating))

    def _finding(self, ctx: RuleContext, chain, gain: float, depth: int):
        slopes = math.prod(link.slope() for link in chain.inner_links)
        # Saturated far enough (a hard tanh past +-1 everywhere), the slopes are 0 and so is the
        # gain: the weights' share is then their own product, not gain / slopes.
        weights = gain / slopes if slopes > 0 else math.prod(weight_gain(link.target.module)
                                                             for link in chain.inner_links)
        activation = chain.dominant_activation()
        layer = min(chain.gain_by_site(), key=lambda site: site[1])[0]
        per_layer = gain ** (1 / len(chain.inner_links))
        return self.finding(
            ctx,
            f"{depth} {activation} layers in a row with no normalization or skip ({chain.span()}): the gradient's "
            f"mean square shrinks to {gain:.2g} across them ({per_layer:.3g}x per layer); the activation slopes "
            f"contribute {slopes:.2g}{_slope_note(activation)}, the weights {weights:.2g}",
            module=layer.path,
            fix=_fix(ctx, layer, activation, slopes, weights),
            severity=Severity.ERROR if gain < GAIN_ERROR else Severity.WARNING,
            weight=min(0.15, 0.05 + 0.01 * abs(math.log10(gain))) if gain > 0 else 0.15,
        )


def _slope_note(activation: str | None) -> str:
    return " (sigmoid' <= 1/4)" if activation and activation.lower().startswith("sigmoid") else ""


def _fix(ctx: RuleContext, layer, activation: str | None, slopes: float, weights: float) -> Fix:
    expression = ctx.spec.expression(layer.path)
    if weights < slopes:  # the weights lose more than the activations: re-initialize
        return Fix(f"initialize the stack at the critical scale for {activation}",
                   init_call(activation, f"{expression}.weight"))
    width = layer.module.weight.shape[0]
    return Fix("put a normalization layer after each weighted layer, or use a non-saturating activation "
               "(ReLU/GELU) in the hidden layers of the stack", f"nn.LayerNorm({width})")
