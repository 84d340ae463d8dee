"""GL102 effective-depth."""

from __future__ import annotations

from gradlint.rule import Rule, RuleContext, Fix, Severity, Stage

# Weighted layers that every input-to-output path crosses (no skip connection bypasses them),
# in a network that has skip connections. The same depth as GL101's plain stack (ours, to
# calibrate): past it the skips no longer make the network shallow.
MIN_SKIP_FREE_DEPTH = 8


class EffectiveDepth(Rule):
    """
    ## What it does
    In a network with residual connections, counts the weighted layers that no skip connection
    bypasses (the shortest input-to-output path) and reports them against the compositional
    depth (the longest path). Flags networks where 8 or more layers are on every path.

    ## Why is this bad?
    A residual network behaves like an ensemble of paths of many lengths; gradients flow
    mostly through the short ones (Veit et al. 2016), and the skips "dilute" the depth that
    gradients see (Philipp et al. 2018). That is why residual networks stay trainable at
    depths where plain ones fail. Layers outside every residual block get none of this: if
    many of them are chained, the network is as deep as a plain stack of that many layers,
    whatever its skips do elsewhere.

    ## Example
    ```python
    self.stem = nn.Sequential(*[nn.Conv2d(16, 16, 3, padding=1) for _ in range(8)])
    self.blocks = nn.Sequential(*[ResidualBlock(16) for _ in range(4)])
    ```

    ## Use instead
    ```python
    self.stem = nn.Conv2d(3, 16, 3, padding=1)
    self.blocks = nn.Sequential(*[ResidualBlock(16) for _ in range(8)])
    ```

    ## References
    - Veit, Wilber, Belongie 2016, Residual Networks Behave Like Ensembles of Relatively Shallow
      Networks, arXiv:1605.06431
    - Philipp, Song, Carbonell 2018, The exploding gradient problem demystified, arXiv:1712.05577
    - docs/theory.md, B3 (effective depth) and A4 (the gradient scale coefficient)
    """

    code = "GL102"
    name = "effective-depth"
    family = "depth"
    severity = Severity.INFO
    stages = frozenset({Stage.TRACE})

    INVALID = ('''
import torch.nn as nn

class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(32, 32)
        self.norm = nn.LayerNorm(32)

    def forward(self, x):
        return x + self.fc(self.norm(x))

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(*[nn.Sequential(nn.Linear(32, 32), nn.LayerNorm(32), nn.ReLU())  # expect: GL102
                                    for _ in range(8)])
        self.blocks = nn.Sequential(Block(), Block())
        self.head = nn.Linear(32, 10)

    def forward(self, x):
        return self.head(self.blocks(self.stem(x)))

def build_model():
    return Net()
''',)
    VALID = ('''
import torch.nn as nn

class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(32, 32)
        self.norm = nn.LayerNorm(32)

    def forward(self, x):
        return x + self.fc(self.norm(x))

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Linear(32, 32)
        self.blocks = nn.Sequential(*[Block() for _ in range(9)])
        self.head = nn.Linear(32, 10)

    def forward(self, x):
        return self.head(self.blocks(self.stem(x)))

def build_model():
    return Net()
''',)

    def check(self, ctx: RuleContext):
        if not ctx.trace.residual_adds:
            return  # a plain network: GL101 speaks about it
        profile = ctx.depth_profile()
        on_every_path = profile.skip_free
        if len(on_every_path) < MIN_SKIP_FREE_DEPTH:
            return
        first = on_every_path[0]
        shown = ", ".join(node.path for node in on_every_path[:4]) + (", ..." if len(on_every_path) > 4 else "")
        yield self.finding(
            ctx,
            f"effective depth {len(on_every_path)} of compositional depth {profile.compositional}: "
            f"{len(on_every_path)} weighted layers are on every input-to-output path, no skip connection "
            f"bypasses them ({shown})",
            module=first.path,
            fix=Fix("move these layers into residual blocks, so that a skip connection bypasses each of them",
                    "x = x + block(x)  # in forward(), around each group of un-bypassed layers"),
            weight=0.05,
        )
