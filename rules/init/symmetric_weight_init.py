"""GL203 symmetric-weight-init."""

from __future__ import annotations

from gradlint.rule import Rule, RuleContext, Fix, Severity, Stage, init_call, is_fan_in_scaled


class SymmetricWeightInit(Rule):
    """
    ## What it does
    Flags a hidden Linear or convolution layer whose output units start as exact copies of
    each other (every row of the weight identical, as `zeros_` or `constant_` make it, and
    equal biases) when the next weighted layer also reads them with identical weights.

    Zero-initialized layers that end a residual branch (Fixup, ReZero, SkipInit), a
    zero-initialized final classifier (Fixup), scalars and biases are not flagged: nothing
    downstream reads their units symmetrically, so the first gradient step tells them apart.

    ## Why is this bad?
    Units that compute the same function and feed the next layer through the same weights
    receive the same gradient, so every update keeps them identical: the layer behaves as a
    single unit for the whole of training (the symmetry is never broken). With all weights
    at zero and ReLU, the gradients are zero as well and nothing trains at all.

    ## Example
    ```python
    for layer in model.modules():
        if isinstance(layer, nn.Linear):
            nn.init.constant_(layer.weight, 0.01)
    ```

    ## Use instead
    ```python
    for layer in model.modules():
        if isinstance(layer, nn.Linear):
            nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")
    ```

    ## References
    - Goodfellow, Bengio & Courville 2016, Deep Learning, section 8.4 ("break symmetry"), MIT Press
    - Glorot & Bengio 2010, Understanding the difficulty of training deep feedforward neural networks, AISTATS
    - Zhang, Dauphin & Ma 2019, Fixup Initialization, arXiv:1901.09321 (zero-init that is fine)
    - Nikanjam et al. 2021, NeuraLint (checkConstantInit), doi:10.1145/3470006
    - docs/theory.md, B2 (zero-initialized tensors by design) and T5 (NeuraLint's static checks)
    """

    code = "GL203"
    name = "symmetric-weight-init"
    family = "init"
    severity = Severity.ERROR
    stages = frozenset({Stage.TRACE})

    INVALID = ('''
import torch
import torch.nn as nn

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(16, 32)  # expect: GL203
        self.fc2 = nn.Linear(32, 32)  # expect: GL203
        self.fc3 = nn.Linear(32, 4)
        for layer in (self.fc1, self.fc2, self.fc3):
            nn.init.constant_(layer.weight, 0.05)
            nn.init.zeros_(layer.bias)

    def forward(self, x):
        return self.fc3(torch.relu(self.fc2(torch.relu(self.fc1(x)))))

def build_model():
    return Net()
''',)
    VALID = ('''
import torch
import torch.nn as nn

class Block(nn.Module):
    def __init__(self, width):
        super().__init__()
        self.fc1 = nn.Linear(width, width)
        self.fc2 = nn.Linear(width, width)
        nn.init.zeros_(self.fc2.weight)  # Fixup/ReZero: the branch starts as zero

    def forward(self, x):
        return x + self.fc2(torch.relu(self.fc1(x)))

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Linear(16, 32)
        self.blocks = nn.Sequential(Block(32), Block(32))
        self.head = nn.Linear(32, 4)
        nn.init.zeros_(self.head.weight)  # Fixup: zero classifier

    def forward(self, x):
        return self.head(self.blocks(self.stem(x)))

def build_model():
    return Net()
''',)

    def check(self, ctx: RuleContext):
        flow = ctx.signal_flow()
        for layer in ctx.trace.layers:
            if not is_fan_in_scaled(layer) or not _units_identical(layer.module):
                continue
            # Through norms too: BatchNorm keeps identical channels identical.
            link = flow.link(layer, through_norms=True)
            if link.target is None or not _reads_units_identically(link.target.module):
                continue
            weight = layer.module.weight.detach()
            value = f"{float(weight.flatten()[0]):g}" if bool((weight == weight.flatten()[0]).all()) else "one vector"
            expression = ctx.spec.expression(layer.path)
            yield self.finding(
                ctx,
                f"all {weight.shape[0]} output units of {layer.path} start as copies (every weight row is "
                f"{value}, biases equal) and {link.target.path} reads them with identical weights: they get "
                f"identical gradients and stay copies, so the layer trains as a single unit",
                module=layer.path,
                fix=Fix("initialize the weight randomly to break the symmetry",
                        init_call(link.activation_name, f"{expression}.weight")),
                weight=0.1,
            )


def _units_identical(module) -> bool:
    weight = module.weight.detach()
    rows = weight.reshape(weight.shape[0], -1)
    if rows.shape[0] < 2 or not bool((rows == rows[0]).all()):
        return False
    bias = getattr(module, "bias", None)
    return bias is None or bool((bias == bias[0]).all())


def _reads_units_identically(module) -> bool:
    """Every input column of the next layer's weight is the same (per output unit)."""
    weight = module.weight.detach()
    columns = weight.reshape(weight.shape[0], weight.shape[1], -1)
    return bool((columns == columns[:, :1]).all())
