"""GL202 compounded-init-gain."""

from __future__ import annotations

import math

from gradlint.rule import Rule, RuleContext, Fix, SATURATING, Severity, Stage, init_call, label

# End-to-end backward gain G = prod chi_1 over a chain (mean square of the gradient, last
# layer -> first). docs/theory.md A1: flag G outside [1e-2, 1e2] (warning), [1e-4, 1e4] (error).
EXPLODE_WARNING = 1e2
EXPLODE_ERROR = 1e4
# Vanishing is a trainability problem, not a divergence, and Adam rescales each tensor; with
# ReLU the forward and backward factors cancel in the weight gradients (docs/theory.md A1 and G1:
# measured ratio 1.4 at G = 6e-8). A1's error bound is therefore the first (info) level here, so LeNet-5
# at PyTorch's default init (G ~ 8e-4) stays quiet while a 20-layer default-init ReLU MLP
# (G ~ 1e-15) is a warning. Calibrate both on the labelled corpus.
VANISH_INFO = 1e-4
VANISH_WARNING = 1e-8


class CompoundedInitGain(Rule):
    """
    ## What it does
    Multiplies the per-layer backward gains chi_1 = Var(W) * fan_in * E[phi'(h)**2] along
    every chain of Linear/convolution layers that are joined by activations only (no
    normalization, no residual add between them), using the weights and the pre-activation
    scale measured in one forward pass, and flags chains whose product G leaves
    [1e-2, 1e2] as explosion, or falls below 1e-4 as vanishing. Chains of tanh or sigmoid
    units are left to GL302 on the vanishing side.

    ## Why is this bad?
    The gradient's mean square changes by chi_1 at every layer, so a factor that is harmless
    once compounds exponentially with depth. Sixteen ReLU layers each initialized 1.3x above
    He's std have chi_1 = 1.69 and G = 1.69**15 ~ 3e3: the first layers get gradients 50x
    larger than the last and the first steps overshoot. The other way, PyTorch's default
    init (Var(W) = 1 / (3 fan_in)) gives chi_1 = 1/6 per ReLU layer: after 20 layers the
    input's influence on the output, and the gradient reaching the first layer, are gone.
    A normalization layer resets the scale and a residual connection keeps an identity path,
    which is why chains stop at them.

    ## Example
    ```python
    layers = []
    for _ in range(20):
        layers += [nn.Linear(256, 256), nn.ReLU()]   # default init: chi_1 = 1/6 per layer
    model = nn.Sequential(*layers)
    ```

    ## Use instead
    ```python
    for layer in model:
        if isinstance(layer, nn.Linear):
            nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")   # chi_1 = 1
    ```

    ## References
    - Poole et al. 2016, Exponential expressivity in deep neural networks through transient chaos, arXiv:1606.05340
    - Schoenholz et al. 2017, Deep Information Propagation, arXiv:1611.01232
    - Glorot & Bengio 2010, Understanding the difficulty of training deep feedforward neural networks, AISTATS
    - He et al. 2015, Delving Deep into Rectifiers, arXiv:1502.01852
    - docs/theory.md, A1 (chi_1 and the decade thresholds) and G1 (measured gains)
    """

    code = "GL202"
    name = "compounded-init-gain"
    family = "init"
    severity = Severity.WARNING
    stages = frozenset({Stage.TRACE})

    INVALID = ('''
import torch.nn as nn

def build_model():
    layers = []
    for _ in range(16):
        layer = nn.Linear(32, 32)  # expect: GL202
        nn.init.normal_(layer.weight, std=1.3 * (2 / 32) ** 0.5)  # 1.3x He: chi_1 = 1.69
        layers += [layer, nn.ReLU()]
    return nn.Sequential(*layers, nn.Linear(32, 10))
''', '''
import torch.nn as nn

def build_model():
    layers = []
    for _ in range(20):
        layers += [nn.Linear(32, 32), nn.ReLU()]  # expect: GL202
    return nn.Sequential(*layers, nn.Linear(32, 10))
''')
    VALID = ('''
import torch.nn as nn

def build_model():
    layers = []
    for _ in range(16):
        layer = nn.Linear(32, 32)
        nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")
        layers += [layer, nn.ReLU()]
    return nn.Sequential(*layers, nn.Linear(32, 10))
''', '''
import torch.nn as nn

def build_model():
    layers = []
    for _ in range(20):
        layers += [nn.Linear(32, 32), nn.LayerNorm(32), nn.ReLU()]  # the norm resets the scale
    return nn.Sequential(*layers, nn.Linear(32, 10))
''')

    def check(self, ctx: RuleContext):
        for chain in ctx.signal_flow().chains():
            if not chain.inner_links:
                continue
            gain = chain.gain()
            if gain > EXPLODE_WARNING:
                yield self._explodes(ctx, chain, gain)
            elif gain < VANISH_INFO and not _mostly_saturating(chain):
                yield self._vanishes(ctx, chain, gain)

    def _explodes(self, ctx: RuleContext, chain, gain: float):
        site = max(chain.gain_by_site(), key=lambda each: each[1])
        return self._finding(
            ctx, chain, site, gain,
            f"the gradient reaching {label(chain.layers[0].path)} is {math.sqrt(gain):.2g}x the one leaving "
            f"{label(chain.layers[-1].path)}",
            severity=Severity.ERROR if gain > EXPLODE_ERROR else Severity.WARNING,
            weight=min(0.9, 0.15 * math.log10(gain)),
        )

    def _vanishes(self, ctx: RuleContext, chain, gain: float):
        site = min(chain.gain_by_site(), key=lambda each: each[1])
        # G = 0 is a measurement, not an accident: every pre-activation of some link sits where its
        # activation is flat (ReLU6 above 6, a hard tanh past +-1, a sigmoid far out), or the
        # product of many small gains underflows. No gradient crosses the chain: as vanishing as it gets.
        shrinks = f"shrinks {1 / math.sqrt(gain):.2g}x" if gain > 0 else "vanishes entirely (a gain of 0)"
        return self._finding(
            ctx, chain, site, gain,
            f"the gradient reaching {label(chain.layers[0].path)} (and the input's share of the output) {shrinks}",
            severity=Severity.WARNING if gain < VANISH_WARNING else Severity.INFO,
            weight=min(0.15, 0.01 * abs(math.log10(gain))) if gain > 0 else 0.15,
        )

    def _finding(self, ctx: RuleContext, chain, site, gain: float, consequence: str, severity, weight):
        layer, site_gain, count = site
        activation = chain.dominant_activation()
        per_layer = gain ** (1 / len(chain.inner_links))
        expression = ctx.spec.expression(layer.path)
        built_here = f"the {count} built here" if count > 1 else label(layer.path)
        return self.finding(
            ctx,
            f"{len(chain.layers)} weighted layers joined only by {activation or 'linear maps'} ({chain.span()}) "
            f"compound a backward gain of {gain:.2g} in mean square ({per_layer:.3g}x per layer; "
            f"{built_here}: {site_gain:.2g}): {consequence}",
            module=layer.path,
            fix=Fix("initialize every layer of the chain at the critical scale for its activation, "
                    "or put a normalization layer between them",
                    init_call(activation, f"{expression}.weight")),
            severity=severity,
            weight=weight,
        )


def _mostly_saturating(chain) -> bool:
    """tanh/sigmoid stacks: their vanishing is the activations' doing (GL302), not the init's."""
    names = chain.activation_names()
    return bool(names) and 2 * sum(name in SATURATING for name in names) >= len(names)
