"""GL104 width-depth-ratio."""

from __future__ import annotations

import math

from gradlint.rule import Rule, RuleContext, Fix, Severity, Stage, is_norm, is_weighted, longest_run

# beta = sum over hidden layers of 1/width. docs/theory.md A2: heuristic thresholds (ours, to
# calibrate) on Hanin & Rolnick's depth-to-width ratio: beta > 0.5 warns.
BETA_LIMIT = 0.5
# Hanin & Rolnick's failure mode 2 is about deep plain stacks; a few narrow layers are a toy
# net, not a fluctuation problem.
MIN_LAYERS = 4


class WidthDepthRatio(Rule):
    """
    ## What it does
    For the longest plain stack of fully connected layers (no residual connection, no
    normalization), computes beta = sum of 1/width over its hidden layers, Hanin and Rolnick's depth-to-width
    ratio, and reports it when it exceeds 0.5.

    ## Why is this bad?
    Even at the critical initialization, the scale of the activations (and gradients) of a
    ReLU network fluctuates from input to input and from one random init to the next, with a
    variance that grows exponentially in beta (Hanin & Rolnick 2018, failure mode 2; Hanin
    2018 for the Jacobian). A deep narrow stack therefore has some inputs and some seeds with
    exploding or vanishing gradients. Residual networks do not suffer from it.

    ## Example
    ```python
    self.layers = nn.Sequential(*[nn.Sequential(nn.Linear(8, 8), nn.ReLU()) for _ in range(6)])  # beta = 0.75
    ```

    ## Use instead
    ```python
    self.layers = nn.Sequential(*[nn.Sequential(nn.Linear(32, 32), nn.ReLU()) for _ in range(6)])  # beta = 0.19
    ```

    ## References
    - Hanin & Rolnick 2018, How to Start Training: The Effect of Initialization and
      Architecture, arXiv:1803.01719
    - Hanin 2018, Which Neural Net Architectures Give Rise to Exploding and Vanishing
      Gradients?, arXiv:1801.03744
    - docs/theory.md, A2 (Hanin and Rolnick's beta)
    """

    code = "GL104"
    name = "width-depth-ratio"
    family = "depth"
    severity = Severity.INFO
    stages = frozenset({Stage.TRACE})

    INVALID = ('''
import torch.nn as nn

def build_model():
    return nn.Sequential(
        nn.Linear(16, 8), nn.ReLU(),  # expect: GL104
        *[m for _ in range(5) for m in (nn.Linear(8, 8), nn.ReLU())],
        nn.Linear(8, 2),
    )
''',)
    VALID = ('''
import torch.nn as nn

def build_model():
    return nn.Sequential(
        nn.Linear(16, 32), nn.ReLU(),
        *[m for _ in range(5) for m in (nn.Linear(32, 32), nn.ReLU())],
        nn.Linear(32, 2),
    )
''',)

    def check(self, ctx: RuleContext):
        stack = longest_run(ctx.trace, counts=is_weighted, breaks=lambda node: is_norm(node) or node.residual)
        if len(stack) < MIN_LAYERS or not all(_fully_connected(node) for node in stack):
            return
        hidden = [node for node in stack[:-1] if _width(node)]
        if not hidden:
            return
        beta = sum(1 / _width(node) for node in hidden)
        if beta <= BETA_LIMIT:
            return
        narrowest = min(hidden, key=_width)
        needed = math.ceil(len(hidden) / BETA_LIMIT)
        yield self.finding(
            ctx,
            f"beta = sum(1/width) = {beta:.2f} over {len(hidden)} hidden layers "
            f"(narrowest {narrowest.path}: {_width(narrowest)} units): the scale of activations and gradients "
            f"varies between inputs and inits by a factor growing like exp(beta)",
            module=narrowest.path,
            fix=Fix(f"widen the hidden layers to >= {needed} units (beta <= {BETA_LIMIT}), "
                    "or add residual connections", f"HIDDEN = {needed}  # width >= depth / {BETA_LIMIT}"),
            weight=min(0.15, 0.05 * beta),
        )


def _fully_connected(node) -> bool:
    """Hanin and Rolnick's result is for fully connected layers; convolutions share weights
    across positions, and their fluctuations are not the same function of the channel count."""
    return "Linear" in node.name or node.name in {"linear", "bilinear"}


def _width(node) -> int:
    """Units of a Linear layer's output: its last dimension."""
    shape = node.output_shape
    return shape[-1] if shape else 0
