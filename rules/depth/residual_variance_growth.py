"""GL103 residual-variance-growth."""

from __future__ import annotations

import math

from gradlint.rule import (
    Rule, RuleContext, Fix, ResidualChain, Severity, Stage, branch_nodes, branch_tail, is_norm,
)

# Growth of the residual stream's mean square from the first block's input to the last
# block's output, Var(x_L)/Var(x_0) = prod_l (1 + alpha^2 g_l): docs/theory.md B1 flags > 1e2;
# 1e4 is the error bound of the signal-propagation thresholds (docs/theory.md, A1).
GROWTH_WARNING = 1e2
GROWTH_ERROR = 1e4


class ResidualVarianceGrowth(Rule):
    """
    ## What it does
    Follows each residual stream x_{l+1} = x_l + f_l(x_l) whose branches contain no
    normalization through the recorded forward pass, and measures how much its mean square
    grows from the first block's input to the last block's output. Flags growth above 100x.

    ## Why is this bad?
    Without normalization on the stream, every block adds its branch's variance:
    Var(x_{l+1}) = Var(x_l) (1 + alpha^2 g_l). A He-initialized two-layer branch has g = 2,
    so 16 blocks grow the variance 3^16 = 4e7; the backward pass grows the same way, and the
    output scale saturates the loss (docs/theory.md, B1). Normalized ResNets avoid this because the
    normalization down-weights each branch by ~1/sqrt(l) (De & Smith 2020); unnormalized ones
    need the branch scaled down explicitly.

    ## Example
    ```python
    def forward(self, x):
        return x + self.fc2(torch.relu(self.fc1(x)))   # He-initialized fc1, fc2
    ```

    ## Use instead
    ```python
    nn.init.zeros_(self.fc2.weight)   # Fixup / zero-init: every block starts as the identity
    # or: x + self.alpha * f(x) with self.alpha = nn.Parameter(torch.zeros(()))  (SkipInit, ReZero)
    # or: x + f(x) / math.sqrt(num_blocks)
    ```

    ## References
    - Zhang, Dauphin, Ma 2019, Fixup Initialization, arXiv:1901.09321
    - De & Smith 2020, Batch Normalization Biases Residual Blocks Towards the Identity Function
      in Deep Networks (SkipInit), arXiv:2002.10444
    - Bachlechner et al. 2020, ReZero is All You Need, arXiv:2003.04887
    - Hanin & Rolnick 2018, How to Start Training, arXiv:1803.01719
    - docs/theory.md, B1 (residual stream growth) and B2 (zero-initialized and scaled branches)
    """

    code = "GL103"
    name = "residual-variance-growth"
    family = "depth"
    severity = Severity.WARNING
    stages = frozenset({Stage.TRACE})

    INVALID = ('''
import torch
import torch.nn as nn

class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(32, 32)
        self.fc2 = nn.Linear(32, 32)  # expect: GL103
        for fc in (self.fc1, self.fc2):
            nn.init.kaiming_normal_(fc.weight, nonlinearity="relu")

    def forward(self, x):
        return x + self.fc2(torch.relu(self.fc1(x)))

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.input = nn.Linear(16, 32)
        self.blocks = nn.Sequential(*[Block() for _ in range(8)])
        self.head = nn.Linear(32, 10)

    def forward(self, x):
        return self.head(self.blocks(self.input(x)))

def build_model():
    return Net()
''',)
    VALID = ('''
import torch
import torch.nn as nn

class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(32, 32)
        self.fc2 = nn.Linear(32, 32)
        nn.init.kaiming_normal_(self.fc1.weight, nonlinearity="relu")
        nn.init.zeros_(self.fc2.weight)

    def forward(self, x):
        return x + self.fc2(torch.relu(self.fc1(x)))

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.input = nn.Linear(16, 32)
        self.blocks = nn.Sequential(*[Block() for _ in range(8)])
        self.head = nn.Linear(32, 10)

    def forward(self, x):
        return self.head(self.blocks(self.input(x)))

def build_model():
    return Net()
''',)

    def check(self, ctx: RuleContext):
        for chain in ctx.residual_chains():
            if any(is_norm(node) for add in chain.adds for node in branch_nodes(ctx.trace, add)):
                continue  # normalized branches add bounded variance: the stream grows linearly, not exponentially
            growth = _mean_square_growth(chain)
            if growth is None or growth <= GROWTH_WARNING:
                continue
            blocks = len(chain.adds)
            per_block = growth ** (1 / blocks)
            tail = branch_tail(ctx.trace, chain.adds[0])
            module = tail.path if tail is not None else chain.adds[0].path
            yield self.finding(
                ctx,
                f"the residual stream's mean square grows {per_block:.3g}x per block over {blocks} blocks "
                f"({growth:.3g}x from {chain.start.path or 'the input'} to the last add in "
                f"{chain.end.path or 'the model'}): the branches are added at full scale with no normalization",
                module=module,
                fix=_fix(ctx, tail, blocks),
                severity=Severity.ERROR if growth >= GROWTH_ERROR else Severity.WARNING,
                weight=min(0.9, 0.15 * math.log10(growth)),
            )


def _mean_square_growth(chain: ResidualChain) -> float | None:
    start, end = chain.start.stats, chain.end.stats
    if start is None or end is None or start.rms <= 0 or not start.finite:
        return None  # a stream that starts with NaN/Inf has no growth to measure (GL501 reports it)
    if not end.finite:
        return math.inf
    return (end.rms / start.rms) ** 2


def _fix(ctx: RuleContext, tail, blocks: int) -> Fix:
    alternatives = (f"or multiply each branch by a learnable scalar initialized to 0 (SkipInit/ReZero), "
                    f"or by 1/sqrt({blocks}) = {1 / math.sqrt(blocks):.3g}")
    if tail is None:
        return Fix(f"scale each residual branch down: {alternatives}",
                   "self.alpha = nn.Parameter(torch.zeros(()))  # then: x + self.alpha * f(x)")
    weight = f"{ctx.spec.expression(tail.path)}.weight"
    return Fix(f"zero-initialize the last layer of each residual branch so every block starts as the "
               f"identity (Fixup; zero-gamma for a norm), {alternatives}",
               f"nn.init.zeros_({weight})")
