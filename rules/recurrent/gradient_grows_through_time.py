"""GL702 gradient-grows-through-time."""

from __future__ import annotations

import math

from gradlint.rule import Rule, RuleContext, Fix, Severity, Stage, clipping_mitigates

# ||dloss/dx_1|| / ||dloss/dx_T||: the end-to-end gain of backpropagation through time, judged
# like a deep stack's gain (docs/theory.md, A1): outside [1e-2, 1e2] warns, outside [1e-4, 1e4] is an
# error. Only growth is flagged: vanishing through time hurts long-range learning but does not
# make training diverge.
GROWTH_WARNING = 1e2
GROWTH_ERROR = 1e4
CLIPPED_WEIGHT_FACTOR = 0.5


class GradientGrowsThroughTime(Rule):
    """
    ## What it does
    Backpropagates the loss of the example batch to the input sequence of every nn.RNN,
    nn.LSTM and nn.GRU and compares the gradient norm at the first time step with the last:
    a ratio above 1e2 warns, above 1e4 is an error. The ratio is measured at the example's
    sequence length, with the model's actual weights and saturation (bidirectional layers
    along their forward direction).

    ## Why is this bad?
    The gradient reaching step t has passed through T - t recurrent Jacobians. When their
    product grows, the earliest steps get gradients orders of magnitude larger than the last
    ones, and a single long or unlucky sequence produces a step that wrecks the weights
    (Bengio et al. 1994; Pascanu et al. 2013). Gradient-norm clipping bounds such steps,
    so the finding weighs less when `gradient_clip_val` is set.

    ## Example
    ```python
    self.rnn = nn.RNN(8, 64, batch_first=True)
    nn.init.orthogonal_(self.rnn.weight_hh_l0)
    self.rnn.weight_hh_l0.data.mul_(2.5)   # first/last-step gradient ratio 230 over 16 steps
    ```

    ## Use instead
    ```python
    self.rnn = nn.LSTM(8, 64, batch_first=True)  # gated, additive cell state
    gradient_clip_val = 1.0
    ```

    ## References
    - Pascanu, Mikolov, Bengio 2013, On the difficulty of training recurrent neural networks, arXiv:1211.5063
    - Bengio, Simard, Frasconi 1994, Learning long-term dependencies with gradient descent is difficult
    - Hochreiter & Schmidhuber 1997, Long Short-Term Memory
    - docs/theory.md, D4 (spectral radius and clipping) and A1 (the decade thresholds)
    """

    code = "GL702"
    name = "gradient-grows-through-time"
    family = "recurrent"
    severity = Severity.WARNING
    stages = frozenset({Stage.PROBE})
    reads_clip = True

    INVALID = ('''
import torch
import torch.nn as nn

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn = nn.RNN(8, 32, nonlinearity="relu", batch_first=True)  # expect: GL702
        self.head = nn.Linear(32, 4)
        with torch.no_grad():
            nn.init.orthogonal_(self.rnn.weight_hh_l0)
            self.rnn.weight_hh_l0.mul_(3.0)

    def forward(self, x):
        return self.head(self.rnn(x)[0][:, -1])

def build_model():
    return Net()

def example_inputs():
    return (torch.randn(8, 16, 8),)
''',)
    VALID = ('''
import torch
import torch.nn as nn

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn = nn.RNN(8, 32, nonlinearity="relu", batch_first=True)
        self.head = nn.Linear(32, 4)
        with torch.no_grad():
            nn.init.orthogonal_(self.rnn.weight_hh_l0)

    def forward(self, x):
        return self.head(self.rnn(x)[0][:, -1])

def build_model():
    return Net()

def example_inputs():
    return (torch.randn(8, 16, 8),)
''',)

    def check(self, ctx: RuleContext):
        for path, profile in ctx.gradient_through_time().items():
            growth = profile.growth
            if len(profile.norms) < 2 or not growth >= GROWTH_WARNING:  # NaN: the loss ignores the last step
                continue
            clipped = bool(ctx.spec.gradient_clip_val)
            steps = len(profile.norms)
            yield self.finding(
                ctx,
                f"the loss gradient at the first of {steps} time steps is {growth:.3g}x the one at the last "
                f"({profile.per_step:.3g}x per step backward through time){clipping_mitigates(ctx)}",
                module=path,
                fix=Fix("bring the recurrent gain to <= 1 (orthogonal or default init of weight_hh, or an LSTM/GRU), "
                        "and clip the gradient norm", "gradient_clip_val = 1.0  # module level of the model file"
                        if not clipped else None),
                severity=Severity.ERROR if growth >= GROWTH_ERROR and not clipped else Severity.WARNING,
                weight=_weight(growth) * (CLIPPED_WEIGHT_FACTOR if clipped else 1.0),
            )


def _weight(growth: float) -> float:
    """0.2 at 1e2, 0.6 at 1e4, 0.9 at 1e7 and beyond (log scale)."""
    if not math.isfinite(growth):
        return 0.9
    decades = math.log10(growth)
    return min(0.9, 0.2 + 0.2 * (decades - 2)) if decades < 4 else min(0.9, 0.6 + 0.1 * (decades - 4))
