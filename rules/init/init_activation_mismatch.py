"""GL206 init-activation-mismatch."""

from __future__ import annotations

from gradlint.rule import (
    Rule, RuleContext, Fix, SATURATING, Severity, Stage, critical_gain_squared, init_call, mean_squared_slope,
    weight_gain,
)

# A weight is recognized as an init scheme when its E[W**2] is within this relative distance
# of the scheme's variance (sampling spread is ~4% for a 32x32 layer; default init, 1/3, is
# far from all of them and never matches).
TOLERANCE = 0.15
MIN_WEIGHTS = 256  # smaller layers sample their variance too loosely to name the scheme
# Only stacks where the mismatch compounds: the layer is in a chain of at least this many
# weighted layers joined by activations only (a 2-layer MLP block with Xavier + ReLU is fine).
MIN_CHAIN = 3
# He et al. 2015 (Fig. 3): with Xavier init a 22-layer ReLU net converges slowly and a 30-layer
# one does not converge at all; warn from 20 layers on.
DEEP_CHAIN = 20


class InitActivationMismatch(Rule):
    """
    ## What it does
    Recognizes layers initialized at He scale (Var(W) = 2 / fan_in, `kaiming_*_`) or at
    Xavier/LeCun scale (Var(W) = 2 / (fan_in + fan_out) or 1 / fan_in, `xavier_*_`,
    orthogonal with gain 1) and flags those whose activation wants the other one: He before
    tanh/sigmoid, Xavier before ReLU-like units, in stacks of at least three weighted layers
    joined by activations only. Info, or a warning for chains of 20 layers or more.

    ## Why is this bad?
    The critical weight variance depends on the activation: ReLU zeroes half its inputs and
    needs Var(W) * fan_in = 2 to keep the signal's scale (He et al. 2015), tanh needs 1
    (Glorot & Bengio 2010). Xavier before ReLU halves the gradient's mean square at every
    layer: He et al. report that a 30-layer ReLU net initialized this way does not converge.
    Kaiming before tanh doubles the pre-activation variance, pushes units into the flat tails
    and puts the network in the chaotic phase, where gradients grow with depth.

    ## Example
    ```python
    for layer in self.layers:
        nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")
    ...
    x = torch.tanh(layer(x))
    ```

    ## Use instead
    ```python
    nn.init.xavier_normal_(layer.weight)   # critical for tanh
    ```

    ## References
    - Glorot & Bengio 2010, Understanding the difficulty of training deep feedforward neural networks, AISTATS
    - He et al. 2015, Delving Deep into Rectifiers, arXiv:1502.01852
    - Saxe, McClelland & Ganguli 2013, Exact solutions to the nonlinear dynamics of learning in deep linear networks, arXiv:1312.6120
    - Poole et al. 2016, Exponential expressivity in deep neural networks through transient chaos, arXiv:1606.05340
    - docs/theory.md, A1 (critical initializations) and A3 (orthogonal weights)
    """

    code = "GL206"
    name = "init-activation-mismatch"
    family = "init"
    severity = Severity.INFO
    stages = frozenset({Stage.TRACE})

    INVALID = ('''
import torch
import torch.nn as nn

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(32, 32) for _ in range(6))  # expect: GL206
        self.head = nn.Linear(32, 10)
        for layer in self.layers:
            nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")

    def forward(self, x):
        for layer in self.layers:
            x = torch.tanh(layer(x))
        return self.head(x)

def build_model():
    return Net()
''', '''
import torch
import torch.nn as nn

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(32, 32) for _ in range(6))  # expect: GL206
        self.head = nn.Linear(32, 10)
        for layer in self.layers:
            nn.init.xavier_uniform_(layer.weight)

    def forward(self, x):
        for layer in self.layers:
            x = torch.relu(layer(x))
        return self.head(x)

def build_model():
    return Net()
''')
    VALID = ('''
import torch
import torch.nn as nn

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(32, 32) for _ in range(6))
        self.head = nn.Linear(32, 10)
        for layer in self.layers:
            nn.init.xavier_normal_(layer.weight)

    def forward(self, x):
        for layer in self.layers:
            x = torch.tanh(layer(x))
        return self.head(x)

def build_model():
    return Net()
''', '''
import torch
import torch.nn as nn

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(32, 32) for _ in range(6))
        self.head = nn.Linear(32, 10)
        for layer in self.layers:
            nn.init.kaiming_uniform_(layer.weight, nonlinearity="relu")

    def forward(self, x):
        for layer in self.layers:
            x = torch.relu(layer(x))
        return self.head(x)

def build_model():
    return Net()
''')

    def check(self, ctx: RuleContext):
        for chain in ctx.signal_flow().chains():
            if len(chain.layers) < MIN_CHAIN:
                continue
            mismatched: dict = {}  # construction line -> (link, scheme, count)
            for link in chain.links:
                scheme = _mismatched_scheme(link)
                if scheme is not None:
                    first, _, count = mismatched.get(link.source.location, (link, scheme, 0))
                    mismatched[link.source.location] = (first, scheme, count + 1)
            for link, scheme, count in mismatched.values():
                yield self._finding(ctx, chain, link, scheme, count)

    def _finding(self, ctx: RuleContext, chain, link, scheme: str, count: int):
        layer, activation = link.source, link.activation_name
        gain = weight_gain(layer.module)
        chi = gain * mean_squared_slope(activation, link.q)
        deep = len(chain.layers) >= DEEP_CHAIN
        layers = f"{count} layers built here are" if count > 1 else f"{layer.path} is"
        return self.finding(
            ctx,
            f"{layers} initialized at {scheme} scale (Var(W)*fan_in = {gain:.2f}) but feed {activation}, whose "
            f"critical value is {critical_gain_squared(activation):g}: chi_1 = {chi:.2f} per layer"
            f"{_saturation(link)} along a chain of {len(chain.layers)} weighted layers ({chain.span()})",
            module=layer.path,
            fix=Fix(f"initialize for {activation}", init_call(activation, f"{ctx.spec.expression(layer.path)}.weight")),
            severity=Severity.WARNING if deep else Severity.INFO,
            weight=0.05 if deep else 0.02,
        )


def _mismatched_scheme(link) -> str | None:
    """'He' before a saturating activation, 'Xavier/LeCun' before a ReLU-like one, else None."""
    activation = link.activation_name
    if activation is None:
        return None
    scheme = _scheme(link.source.module)
    if scheme == "He" and activation in SATURATING:
        return scheme
    if scheme == "Xavier/LeCun" and critical_gain_squared(activation) > 1.5:
        return scheme
    return None


def _scheme(module) -> str | None:
    weight = module.weight.detach().float()
    if weight.numel() < MIN_WEIGHTS:
        return None
    mean_square = float(weight.pow(2).mean())
    receptive = weight[0, 0].numel()
    fan_in, fan_out = weight.shape[1] * receptive, weight.shape[0] * receptive

    def near(variance: float) -> bool:
        return abs(mean_square / variance - 1) < TOLERANCE

    if near(2 / fan_in) or near(2 / fan_out):
        return "He"
    if near(2 / (fan_in + fan_out)) or near(1 / fan_in):
        return "Xavier/LeCun"
    return None


def _saturation(link) -> str:
    stats = link.activation.stats
    fraction = stats.saturated_fraction if stats is not None else None
    return f", {fraction:.0%} of the {link.activation_name} outputs saturated" if fraction else ""
