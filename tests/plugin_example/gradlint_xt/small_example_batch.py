"""XT101 small-example-batch."""

from __future__ import annotations

from gradlint.rule import Rule, RuleContext, Severity, Stage

MIN_SAMPLES = 8


class SmallExampleBatch(Rule):
    """
    ## What it does
    Flags models whose example batch holds fewer than 8 samples.

    ## Why is this bad?
    gradlint measures activation and gradient statistics on the example batch; over a handful of
    samples they are noisy, and BatchNorm and the lookahead's resampled batches behave unlike
    training. A batch the size of a real training batch gives measurements that carry over.

    ## Example
    ```python
    def example_inputs():
        return (torch.randn(2, 16),)
    ```

    ## Use instead
    ```python
    def example_inputs():
        return (torch.randn(32, 16),)
    ```

    ## References
    - gradlint's README, "Model files": what example_inputs() should return
    """

    code = "XT101"
    name = "small-example-batch"
    family = "inputs"
    severity = Severity.INFO
    stages = frozenset({Stage.STATIC})

    INVALID = ('''
import torch
import torch.nn as nn

class Net(nn.Module):  # expect: XT101
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(16, 4)

    def forward(self, x):
        return self.fc(x)

def example_inputs():
    return (torch.randn(2, 16),)
''',)
    VALID = ('''
import torch
import torch.nn as nn

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(16, 4)

    def forward(self, x):
        return self.fc(x)

def example_inputs():
    return (torch.randn(32, 16),)
''',)

    def check(self, ctx: RuleContext):
        first = ctx.spec.inputs[0] if ctx.spec.inputs else None
        size = first.shape[0] if getattr(first, "ndim", 0) else None
        if size is not None and size < MIN_SAMPLES:
            yield self.finding(ctx, f"the example batch holds {size} samples: its statistics are noisy "
                                    f"below {MIN_SAMPLES}", location=ctx.spec.model_location,
                               fix=f"return a batch of at least {MIN_SAMPLES} samples from example_inputs()")
