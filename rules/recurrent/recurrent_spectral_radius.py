"""GL701 recurrent-spectral-radius."""

from __future__ import annotations

import math

from gradlint.rule import Rule, RuleContext, Fix, Severity, Stage, clipping_mitigates, gate_radii, recurrent_layers

# rho * gamma above 1 is necessary for exploding gradients through time (Pascanu et al. 2013,
# docs/theory.md D4). It is not sufficient (saturation can tame it), so the weight stays moderate
# and the measured gradient through time (GL702) carries the stronger evidence.
GAIN_THRESHOLD = 1.01  # orthogonal init (rho = 1 exactly, up to rounding) is the standard remedy: it passes
GAIN_ERROR = 2.0  # gradients can grow 2^T: over 16 steps, 6.5e4
CLIPPED_WEIGHT_FACTOR = 0.5
# ReLU RNNs do not saturate: a recurrent gain above 1 compounds without the damping tanh gives.
UNBOUNDED_EXTRA_WEIGHT = 0.2


class RecurrentSpectralRadius(Rule):
    """
    ## What it does
    Computes the spectral radius rho of every recurrent weight of nn.RNN, nn.LSTM and nn.GRU
    (weight_hh_l*, per gate block for LSTM and GRU) and flags blocks where rho * gamma > 1,
    gamma being the largest slope of the nonlinearity the block feeds: 1 for tanh and ReLU,
    1/4 for sigmoid gates.

    ## Why is this bad?
    Backpropagation through time multiplies the gradient by W_hh^T diag(phi') once per step.
    rho(W_hh) > 1/gamma is the necessary condition for that product to explode (Pascanu et al.
    2013): with rho = 2.5 and tanh, unsaturated directions grow like 2.5^T. PyTorch's default
    init gives rho ~ 0.58 per block; orthogonal init gives exactly 1.

    ## Example
    ```python
    self.rnn = nn.RNN(8, 64)
    nn.init.orthogonal_(self.rnn.weight_hh_l0)
    self.rnn.weight_hh_l0.data.mul_(2.5)        # rho = 2.5
    ```

    ## Use instead
    ```python
    self.rnn = nn.RNN(8, 64)
    nn.init.orthogonal_(self.rnn.weight_hh_l0)  # rho = 1; or keep the default init
    ```

    ## References
    - Pascanu, Mikolov, Bengio 2013, On the difficulty of training recurrent neural networks, arXiv:1211.5063
    - Bengio, Simard, Frasconi 1994, Learning long-term dependencies with gradient descent is difficult
    - Saxe, McClelland, Ganguli 2013, Exact solutions to the nonlinear dynamics of learning in deep
      linear networks, arXiv:1312.6120
    - docs/theory.md, D4 (spectral radius and clipping)
    """

    code = "GL701"
    name = "recurrent-spectral-radius"
    family = "recurrent"
    severity = Severity.WARNING
    stages = frozenset({Stage.STATIC})
    reads_clip = True

    INVALID = ('''
import torch
import torch.nn as nn

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn = nn.RNN(8, 32, batch_first=True)  # expect: GL701
        self.head = nn.Linear(32, 4)
        with torch.no_grad():
            nn.init.orthogonal_(self.rnn.weight_hh_l0)
            self.rnn.weight_hh_l0.mul_(2.5)

    def forward(self, x):
        return self.head(self.rnn(x)[0][:, -1])

def build_model():
    return Net()
''',)
    VALID = ('''
import torch
import torch.nn as nn

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn = nn.RNN(8, 32, batch_first=True)
        self.head = nn.Linear(32, 4)
        with torch.no_grad():
            nn.init.orthogonal_(self.rnn.weight_hh_l0)

    def forward(self, x):
        return self.head(self.rnn(x)[0][:, -1])

def build_model():
    return Net()
''',)

    def check(self, ctx: RuleContext):
        for path, module in recurrent_layers(ctx.model):
            radii = gate_radii(module)
            worst = max(radii, key=lambda r: r.gain, default=None)
            if worst is None or worst.gain <= GAIN_THRESHOLD:
                continue
            over = [r.label for r in radii if r.gain > GAIN_THRESHOLD and r is not worst]
            also = f"; also above: {', '.join(over[:3])}{', ...' if len(over) > 3 else ''}" if over else ""
            slope = "1/4 (sigmoid)" if worst.gamma < 1 else "1"
            clipped = bool(ctx.spec.gradient_clip_val)
            yield self.finding(
                ctx,
                f"{worst.label} has spectral radius {worst.radius:.3g}: "
                f"rho x max slope {slope} = {worst.gain:.3g} > 1, "
                f"so gradients through time can grow like {worst.gain:.3g}^T{also}{clipping_mitigates(ctx)}",
                module=path,
                fix=_fix(ctx, path, module, worst),
                severity=Severity.ERROR if worst.gain >= GAIN_ERROR and not clipped else Severity.WARNING,
                weight=_weight(worst.gain, module.mode == "RNN_RELU") * (CLIPPED_WEIGHT_FACTOR if clipped else 1.0),
            )


def _fix(ctx: RuleContext, path: str, module, worst) -> Fix:
    weight = f"{ctx.spec.expression(path)}.{worst.parameter}"
    blocks = len(module.weight_hh_l0) // module.hidden_size
    if blocks == 1:
        code = f"nn.init.orthogonal_({weight})"
    else:
        code = f"for block in {weight}.data.chunk({blocks}):\n    nn.init.orthogonal_(block)"
    return Fix("initialize the recurrent weights orthogonally (spectral radius 1), or scale them below "
               "1/gamma; clip gradients (gradient_clip_val = 1.0) to contain what remains", code)


def _weight(gain: float, unbounded: bool) -> float:
    """0.1 just above 1, 0.4 at a gain of 4 (log scale), 0.5 beyond; more for ReLU RNNs."""
    base = min(0.5, 0.1 + 0.3 * math.log(gain) / math.log(4.0))
    return base + (UNBOUNDED_EXTRA_WEIGHT if unbounded else 0.0)
