"""GL201 init-scale-too-large."""

from __future__ import annotations

from gradlint.rule import (
    Rule, RuleContext, Fix, Severity, Stage, critical_gain_squared, init_call, is_fan_in_scaled, is_normalization,
    mean_squared_slope, weight_gain,
)

# Var(W)*fan_in above this many times the critical value: every such layer multiplies the
# signal's mean square by the ratio (chi_1 = ratio), so a few of them already explode it.
RATIO_WARNING = 4.0
RATIO_ERROR = 16.0


class InitScaleTooLarge(Rule):
    """
    ## What it does
    Flags Linear and convolution layers whose weight variance is far above the critical
    value for the activation that follows them: Var(W) * fan_in against 2 for ReLU-like
    activations (He), 1 for tanh, sigmoid, SELU and linear outputs (LeCun/Xavier). Layers
    whose output goes straight into a normalization layer are skipped: the norm divides the
    scale out, forward and backward. So is the layer producing the model's output, which
    multiplies nothing after it: its scale is the output's, which GL205 measures.

    ## Why is this bad?
    Each layer multiplies the mean square of the signal, forward and backward, by
    chi_1 = Var(W) * fan_in / critical. A layer initialized with `normal_(std=1.0)` at
    fan_in 64 has chi_1 = 32 before a ReLU; ten of them scale gradients by 32**10 and the
    first optimizer step blows up (Poole et al. 2016; He et al. 2015).

    ## Example
    ```python
    self.fc = nn.Linear(256, 256)
    nn.init.normal_(self.fc.weight, std=1.0)   # Var(W) * fan_in = 256
    ```

    ## Use instead
    ```python
    nn.init.kaiming_normal_(self.fc.weight, nonlinearity="relu")   # Var(W) * fan_in = 2
    ```

    ## References
    - He et al. 2015, Delving Deep into Rectifiers, arXiv:1502.01852
    - Poole et al. 2016, Exponential expressivity in deep neural networks, arXiv:1606.05340
    - docs/theory.md, A1 (the critical weight variance of each activation)
    """

    code = "GL201"
    name = "init-scale-too-large"
    family = "init"
    severity = Severity.WARNING
    stages = frozenset({Stage.TRACE})

    INVALID = ('''
import torch
import torch.nn as nn

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(64, 64)  # expect: GL201
        self.fc2 = nn.Linear(64, 10)
        nn.init.normal_(self.fc1.weight, std=1.0)

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(x)))

def build_model():
    return Net()
''',)
    VALID = ('''
import torch
import torch.nn as nn

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(64, 64)
        self.fc2 = nn.Linear(64, 10)
        nn.init.kaiming_normal_(self.fc1.weight, nonlinearity="relu")

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(x)))

def build_model():
    return Net()
''', '''
import torch
import torch.nn as nn

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(64, 64)
        self.norm = nn.LayerNorm(64)
        self.fc2 = nn.Linear(64, 10)
        nn.init.normal_(self.fc1.weight, std=1.0)  # the LayerNorm divides this scale out

    def forward(self, x):
        return self.fc2(torch.relu(self.norm(self.fc1(x))))

def build_model():
    return Net()
''')

    def check(self, ctx: RuleContext):
        flow = ctx.signal_flow()
        # The layer producing the model's output multiplies nothing after it: its scale is the
        # output's, which GL205 measures, and the gradient it sends back is the optimizer rules'.
        # (T5's output layer, tied to an N(0, 1) embedding, reads its input scaled by d_model**-0.5;
        # a BatchNorm net's classifier reads unit-scale features whatever its init.)
        output = ctx.output_weights()
        for layer in ctx.trace.layers:
            if not is_fan_in_scaled(layer) or _weight_name(ctx, layer) in output:
                continue
            link = flow.link(layer)
            if link.end is not None and is_normalization(link.end.name):
                continue  # the norm divides the scale out, forward and backward
            act_name = link.activation_name
            critical = critical_gain_squared(act_name)
            scale = weight_gain(layer.module)
            ratio = scale / critical
            if not ratio >= RATIO_WARNING:  # also NaN: a weight holding NaN/Inf has no scale (GL501)
                continue
            follows = f"before {act_name}" if act_name else "with no activation after it"
            expression = ctx.spec.expression(layer.path)
            # chi_1 with the activation's slope at the measured pre-activation scale: equal to
            # the ratio for ReLU, smaller for a saturating tanh (which GL301 reports).
            chi = scale * mean_squared_slope(act_name, link.q)
            yield self.finding(
                ctx,
                f"weight variance x fan_in is {scale:.3g}, {ratio:.3g}x the critical {critical:g} {follows}; "
                f"each such layer multiplies the gradient's mean square by ~{chi:.3g}",
                module=layer.path,
                fix=Fix("initialize at the critical scale", init_call(act_name, f"{expression}.weight")),
                severity=Severity.ERROR if ratio >= RATIO_ERROR else Severity.WARNING,
                weight=min(0.9, 0.15 * (ratio / RATIO_WARNING)),
            )


def _weight_name(ctx: RuleContext, layer) -> str | None:
    weight = getattr(layer.module, "weight", None)
    return next((name for name, parameter in ctx.model.named_parameters() if parameter is weight), None)
