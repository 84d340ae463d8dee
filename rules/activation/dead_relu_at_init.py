"""GL303 dead-relu-at-init."""

from __future__ import annotations

import math

from gradlint.rule import Rule, RuleContext, Fix, RECTIFIERS, Severity, Stage, worst_sites

# Fraction of a ReLU layer's units (features, or channels of a feature map) that are zero
# for every example of the batch. SageMaker Debugger's DeadRelu fails a layer above 50%
# (threshold_layer=50); torch-audit's TA105 (activation collapse) fires above 90% (docs/theory.md, T3).
FRACTION_WARNING = 0.5
FRACTION_ERROR = 0.9
# A unit that is active on half the inputs looks dead on a batch of n rows with probability
# 2**-n: below 8 rows (0.4%) the measurement says more about the batch than the layer.
MIN_ROWS = 8


class DeadReluAtInit(Rule):
    """
    ## What it does
    Flags ReLU layers where more than half of the units (features, or channels of a feature
    map) output zero for every example of the batch at initialization. The finding points at
    the layer feeding the ReLU.

    ## Why is this bad?
    A unit that is negative for every input has zero gradient: its incoming weights and
    bias never change, so it stays dead for good, and the layer trains with a fraction of
    its width. At init this comes from a strongly negative bias, a weight scale far too
    small next to the bias, or inputs that were not centred; with every unit dead nothing
    below the layer receives any gradient at all.

    ## Example
    ```python
    self.fc = nn.Linear(64, 64)
    nn.init.constant_(self.fc.bias, -1.0)
    x = torch.relu(self.fc(x))
    ```

    ## Use instead
    ```python
    nn.init.zeros_(self.fc.bias)   # or nn.LeakyReLU(0.01) to keep a gradient on the negative side
    ```

    ## References
    - Lu, Shin, Su & Karniadakis 2019, Dying ReLU and Initialization: Theory and Numerical Examples, arXiv:1903.06733
    - Maas, Hannun & Ng 2013, Rectifier Nonlinearities Improve Neural Network Acoustic Models (leaky ReLU), ICML
    - SageMaker Debugger DeadRelu rule (threshold_layer = 50%); torch-audit TA105 (90%)
    - docs/theory.md, T3 (the dead-ReLU thresholds of other tools)
    """

    code = "GL303"
    name = "dead-relu-at-init"
    family = "activation"
    severity = Severity.WARNING
    stages = frozenset({Stage.TRACE})

    INVALID = ('''
import torch
import torch.nn as nn

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(32, 64)  # expect: GL303
        self.head = nn.Linear(64, 10)
        nn.init.constant_(self.fc.bias, -1.0)

    def forward(self, x):
        return self.head(torch.relu(self.fc(x)))

def build_model():
    return Net()
''',)
    VALID = ('''
import torch
import torch.nn as nn

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(32, 64)
        self.head = nn.Linear(64, 10)
        nn.init.zeros_(self.fc.bias)

    def forward(self, x):
        return self.head(torch.relu(self.fc(x)))

def build_model():
    return Net()
''',)

    def check(self, ctx: RuleContext):
        flow = ctx.signal_flow()
        for site in worst_sites(flow, RECTIFIERS, _dead_fraction):
            fraction = _dead_fraction(site.activation)
            if fraction <= FRACTION_WARNING:
                continue
            units = _units(site.activation.output_shape)
            yield self.finding(
                ctx,
                f"{fraction:.0%} of the {units} units of {site.name} are zero for the whole batch at init"
                f"{site.calls_note()}{_bias_note(site)}: they get no gradient and never recover",
                fix=_fix(ctx, site),
                severity=Severity.ERROR if fraction > FRACTION_ERROR else Severity.WARNING,
                weight=0.15 if fraction > FRACTION_ERROR else 0.05,
                **site.target(),
            )


def _dead_fraction(node) -> float | None:
    """The measured fraction, when the batch has enough rows per unit to tell dead from unlucky."""
    if node.stats is None or node.stats.dead_fraction is None or not node.output_shape:
        return None
    rows = math.prod(node.output_shape) // max(_units(node.output_shape), 1)
    return node.stats.dead_fraction if rows >= MIN_ROWS else None


def _units(shape: tuple[int, ...]) -> int:
    """Units as the trace counts them: channels of a feature map (N, C, H, W...), else features."""
    return shape[1] if len(shape) > 3 else shape[-1]


def _bias_mean(site) -> float | None:
    bias = getattr(site.layer.module, "bias", None) if site.layer is not None else None
    return float(bias.detach().float().mean()) if bias is not None else None


def _bias_note(site) -> str:
    mean = _bias_mean(site)
    return f" (mean bias of {site.layer.path}: {mean:.3g})" if mean is not None and mean < 0 else ""


def _fix(ctx: RuleContext, site) -> Fix:
    if site.layer is None:
        return Fix("center the ReLU's input (normalize it) or use LeakyReLU", "nn.LeakyReLU(0.01)")
    expression = ctx.spec.expression(site.layer.path)
    mean = _bias_mean(site)
    if mean is not None and mean < 0:
        return Fix("start the bias at zero", f"nn.init.zeros_({expression}.bias)")
    return Fix("initialize the layer at He scale with a zero bias, or use LeakyReLU",
               f'nn.init.kaiming_normal_({expression}.weight, nonlinearity="relu")')
