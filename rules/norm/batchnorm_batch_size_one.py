"""GL401 batchnorm-batch-size-one."""

from __future__ import annotations

import math

from gradlint.rule import Rule, RuleContext, Fix, Severity, Stage

# GroupNorm's default group count (Wu & He 2018): 32 groups, or a divisor of the channel count.
GROUPS = 32


class BatchNormBatchSizeOne(Rule):
    """
    ## What it does
    Flags BatchNorm layers in a model whose example batch holds a single sample.

    ## Why is this bad?
    In training mode BatchNorm normalizes each channel with statistics over the batch. With
    one sample there are no batch statistics: `BatchNorm1d` on a (1, C) input raises
    "Expected more than 1 value per channel when training", and with spatial or sequence
    dimensions each channel is normalized over one sample's positions only, so the statistics
    are noisy, the gradient through them is degenerate, and the running averages used at
    evaluation do not match what training saw (Ioffe 2017; Wu & He 2018). The forward fails,
    or trains to something that evaluates differently.

    ## Example
    ```python
    self.bn = nn.BatchNorm2d(64)
    def example_inputs():
        return (torch.randn(1, 3, 32, 32),)
    ```

    ## Use instead
    ```python
    self.bn = nn.GroupNorm(32, 64)   # batch-independent
    # or, when training uses real batches: return one from example_inputs()
    ```

    ## References
    - Wu & He 2018, Group Normalization, arXiv:1803.08494
    - Ioffe 2017, Batch Renormalization, arXiv:1702.03275
    - Ioffe & Szegedy 2015, Batch Normalization, arXiv:1502.03167
    - docs/theory.md, C6
    """

    code = "GL401"
    name = "batchnorm-batch-size-one"
    family = "norm"
    severity = Severity.WARNING
    stages = frozenset({Stage.STATIC})

    INVALID = ('''
import torch
import torch.nn as nn

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 16, 3, padding=1)
        self.bn = nn.BatchNorm2d(16)  # expect: GL401
        self.head = nn.Linear(16, 10)

    def forward(self, x):
        return self.head(torch.relu(self.bn(self.conv(x))).mean(dim=(2, 3)))

def build_model():
    return Net()

def example_inputs():
    return (torch.randn(1, 3, 8, 8),)
''',)
    VALID = ('''
import torch
import torch.nn as nn

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 16, 3, padding=1)
        self.bn = nn.BatchNorm2d(16)
        self.head = nn.Linear(16, 10)

    def forward(self, x):
        return self.head(torch.relu(self.bn(self.conv(x))).mean(dim=(2, 3)))

def build_model():
    return Net()

def example_inputs():
    return (torch.randn(8, 3, 8, 8),)
''',)

    def check(self, ctx: RuleContext):
        if _batch_size(ctx.spec.inputs) != 1:
            return
        batch_norms = _batch_norms(ctx.model)
        if not batch_norms:
            return
        path, module = batch_norms[0]
        others = f" (and {len(batch_norms) - 1} more)" if len(batch_norms) > 1 else ""
        # BatchNorm1d usually sees (N, C) features: one value per channel, which raises in training.
        raises = any(type(m).__name__ == "BatchNorm1d" for _, m in batch_norms)
        channels = module.num_features
        groups = math.gcd(GROUPS, channels)
        yield self.finding(
            ctx,
            f"the example batch holds 1 sample: {type(module).__name__} {path}{others} normalizes each channel "
            f"with statistics of a single sample in training mode"
            + (" (a (1, C) input raises in BatchNorm1d)" if raises else ""),
            module=path,
            fix=Fix("use a batch-independent normalization if training really uses batches of 1; "
                    "otherwise return a batch of the training size from example_inputs()",
                    f"{ctx.spec.expression(path)} = nn.GroupNorm({groups}, {channels})"),
            severity=Severity.ERROR if raises else Severity.WARNING,
            weight=0.2,
        )


def _batch_size(inputs: tuple) -> int | None:
    """The leading dimension of the first batched input tensor."""
    for value in inputs:
        shape = getattr(value, "shape", None)
        if shape is not None and len(shape) >= 2:
            return int(shape[0])
    return None


def _batch_norms(model) -> list:
    from torch.nn.modules.batchnorm import _BatchNorm

    return [(path, module) for path, module in model.named_modules()
            if isinstance(module, _BatchNorm) and module.training]
