"""GL301 saturated-activations."""

from __future__ import annotations

from gradlint.rule import Rule, RuleContext, Fix, SATURATING, Severity, SignalFlow, Stage, init_call, worst_sites

# Fraction of a tanh/sigmoid layer's outputs in the flat tails (|tanh| >= 0.99, sigmoid outside
# (0.01, 0.99); the derivative there is < 2% of its peak). SageMaker Debugger's
# SaturatedActivation and DeepDiagnosis fail a layer when more than 50% of it is saturated.
FRACTION_WARNING = 0.5
FRACTION_ERROR = 0.9


class SaturatedActivations(Rule):
    """
    ## What it does
    Flags tanh, sigmoid, hardtanh and softsign layers where more than half of the outputs
    sit in the flat tails at initialization (|tanh| >= 0.99, sigmoid outside (0.01, 0.99)),
    measured on the example batch. The finding points at the layer that feeds the activation.

    ## Why is this bad?
    In the tails the derivative is below 2% of its peak, so those units pass almost no
    gradient back and their weights hardly move: the layer stops learning and cuts the
    gradient path for everything below it. Saturation at init means the pre-activations are
    too large: the feeding layer is initialized too large (e.g. Kaiming or N(0, 1) before
    tanh) or its inputs are unnormalized.

    ## Example
    ```python
    self.fc = nn.Linear(256, 256)
    nn.init.normal_(self.fc.weight, std=0.5)   # pre-activation std ~ 8
    x = torch.tanh(self.fc(x))
    ```

    ## Use instead
    ```python
    nn.init.xavier_normal_(self.fc.weight)     # pre-activation std ~ 1
    ```

    ## References
    - Glorot & Bengio 2010, Understanding the difficulty of training deep feedforward neural networks, AISTATS
    - LeCun, Bottou, Orr & Mueller 1998, Efficient BackProp
    - SageMaker Debugger SaturatedActivation rule (threshold 50% of units); Wardat et al. 2022, DeepDiagnosis, arXiv:2112.04036
    - docs/theory.md, T3 (the saturation thresholds of other tools)
    """

    code = "GL301"
    name = "saturated-activations"
    family = "activation"
    severity = Severity.WARNING
    stages = frozenset({Stage.TRACE})

    INVALID = ('''
import torch
import torch.nn as nn

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(64, 64)  # expect: GL301
        self.head = nn.Linear(64, 10)
        nn.init.normal_(self.fc.weight, std=1.0)

    def forward(self, x):
        return self.head(torch.tanh(self.fc(x)))

def build_model():
    return Net()
''',)
    VALID = ('''
import torch
import torch.nn as nn

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(64, 64)
        self.head = nn.Linear(64, 10)
        nn.init.xavier_normal_(self.fc.weight)

    def forward(self, x):
        return self.head(torch.tanh(self.fc(x)))

def build_model():
    return Net()
''',)

    def check(self, ctx: RuleContext):
        flow = ctx.signal_flow()
        for site in worst_sites(flow, SATURATING, _saturated_fraction):
            fraction = _saturated_fraction(site.activation)
            if fraction <= FRACTION_WARNING:
                continue
            yield self.finding(
                ctx,
                f"{fraction:.0%} of the {site.name} outputs are saturated at init{site.calls_note()}"
                f"{_pre_activation_note(flow, site)}: those units pass < 2% of the gradient back",
                fix=_fix(ctx, site),
                severity=Severity.ERROR if fraction > FRACTION_ERROR else Severity.WARNING,
                weight=0.15 if fraction > FRACTION_ERROR else 0.1,
                **site.target(),
            )


def _saturated_fraction(node) -> float | None:
    return node.stats.saturated_fraction if node.stats is not None else None


def _pre_activation_note(flow: SignalFlow, site) -> str:
    producers = flow.producers(site.activation)
    stats = producers[0].stats if len(producers) == 1 else None
    return f" (pre-activation RMS {stats.rms:.3g})" if stats is not None else ""


def _fix(ctx: RuleContext, site) -> Fix:
    if site.layer is None:
        return Fix(f"normalize the input of {site.activation.name} (LayerNorm/BatchNorm) or scale it down")
    expression = ctx.spec.expression(site.layer.path)
    return Fix(f"initialize {expression} for {site.activation.name}, or normalize its output",
               init_call(site.activation.name, f"{expression}.weight"))
