"""GL505 fp16-range-overflow."""

from __future__ import annotations

from typing import Any

from gradlint.rule import Rule, RuleContext, Fix, Observed, Severity, Stage, sci

# IEEE-754 half precision: largest finite value (docs/theory.md, E1).
FP16_MAX = 65504.0
# Values within 8x of the fp16 maximum at init: training grows them past it (docs/theory.md, E2:
# a margin of k = 8 below 65504, gradlint's own choice).
FP16_MARGIN = 8.0
# Whether the model trains in fp16 is unknown here (most train in fp32 or bf16), so the
# weights are small: certain overflow under fp16 autocast, a margin of less than 8x.
WEIGHT_OVERFLOW, WEIGHT_MARGIN = 0.15, 0.05
# Ops that write a large constant on purpose (attention masks filled with -1e9).
MASK_OPS = {"masked_fill", "masked_fill_", "fill_", "full", "full_like", "new_full", "where", "fill"}
# Magnitudes from here on are sentinels such as torch.finfo(dtype).min in additive attention
# masks, which code picks per dtype; an activation that really explodes crosses the margin at
# smaller values first, and is reported there.
SENTINEL = 1e30


class Fp16RangeOverflow(Rule):
    """
    ## What it does
    Reads the absolute maximum of every recorded activation, and the RMS of every gradient,
    from one forward and backward pass at initialization, and flags values above 65504 / 8
    (info) or above 65504 (warning): the range of float16.

    ## Why is this bad?
    Under `torch.autocast(dtype=torch.float16)` a value above 65504 becomes Inf, and the next
    normalization or softmax turns it into NaN. An activation already within 8x of the limit
    at initialization usually crosses it once training grows the weights. Gradients larger
    than the limit cannot be represented even with loss scaling: `GradScaler` then skips
    steps while it keeps halving its scale. bfloat16 has float32's range and does not have
    this problem.

    ## Example
    ```python
    self.fc = nn.Linear(512, 512)
    nn.init.normal_(self.fc.weight, std=1.0)   # x22 per layer: logits reach ~1e4 after three
    ```

    ## Use instead
    ```python
    nn.init.kaiming_normal_(self.fc.weight, nonlinearity="relu")
    # or train in bfloat16: torch.autocast("cuda", dtype=torch.bfloat16)
    ```

    ## References
    - Micikevicius et al. 2018, Mixed Precision Training, arXiv:1710.03740
    - Kalamkar et al. 2019, A Study of BFLOAT16 for Deep Learning Training, arXiv:1905.12322
    - IEEE 754-2008 binary16: largest finite value 65504
    - docs/theory.md, E1 (format limits) and E2 (mixed-precision margins)
    """

    code = "GL505"
    name = "fp16-range-overflow"
    family = "probe"
    severity = Severity.INFO
    stages = frozenset({Stage.PROBE})

    INVALID = ('''
import torch
import torch.nn as nn

class WideMLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(512, 512)
        self.fc2 = nn.Linear(512, 512)
        self.fc3 = nn.Linear(512, 10)  # expect: GL505
        for fc in (self.fc1, self.fc2, self.fc3):
            nn.init.normal_(fc.weight, std=1.0)

    def forward(self, x):
        return self.fc3(torch.relu(self.fc2(torch.relu(self.fc1(x)))))

def build_model():
    return WideMLP()
''',)
    VALID = ('''
import torch
import torch.nn as nn

class WideMLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(512, 512)
        self.fc2 = nn.Linear(512, 512)
        self.fc3 = nn.Linear(512, 10)
        for fc in (self.fc1, self.fc2, self.fc3):
            nn.init.kaiming_normal_(fc.weight, nonlinearity="relu")

    def forward(self, x):
        return self.fc3(torch.relu(self.fc2(torch.relu(self.fc1(x)))))

def build_model():
    return WideMLP()
''',)

    def check(self, ctx: RuleContext):
        obs = ctx.observed()
        limit = FP16_MAX / FP16_MARGIN
        large = [(node, value, kind) for node, value, kind in _magnitudes(obs) if value > limit]
        if not large:
            return
        first, first_value, first_kind = large[0]
        peak, peak_value, peak_kind = max(large, key=lambda item: item[1])
        overflow = peak_value > FP16_MAX
        message = f"{first_kind} reach {sci(first_value)} at {_where(first)}, " + (
            "beyond float16's maximum 65504: they become Inf under fp16 autocast" if first_value > FP16_MAX
            else f"within {FP16_MARGIN:g}x of float16's maximum 65504")
        if len(large) > 1:
            message += (f"; {len(large)} tensors exceed 65504/{FP16_MARGIN:g}, the largest {peak_kind} "
                        f"{sci(peak_value)} at {_where(peak)}")
        yield self.finding(
            ctx, message, module=first.path, location=first.location if first.kind == "op" else None,
            fix=Fix("train in bfloat16 (float32's range), or bring these values to unit scale at init (see the "
                    "init and depth findings)", 'with torch.autocast("cuda", dtype=torch.bfloat16):'),
            severity=Severity.WARNING if overflow else Severity.INFO,
            weight=WEIGHT_OVERFLOW if overflow else WEIGHT_MARGIN,
        )


def _where(node: Any) -> str:
    return f"layer {node.path}" if node.kind == "layer" else node.name


def _magnitudes(obs: Observed) -> list[tuple[Any, float, str]]:
    """(node, magnitude, "activations" | "gradients") in forward order: the absmax of each finite
    output (non-finite ones are GL501's), and the RMS of its gradient, a lower bound on its absmax."""
    found = []
    for node in obs.trace.nodes:
        stats = node.stats
        if stats is not None and stats.finite and stats.absmax < SENTINEL and node.name not in MASK_OPS:
            found.append((node, stats.absmax, "activations"))
        gradient = obs.grad_rms.get(node.index)
        if gradient is not None and gradient < float("inf"):
            found.append((node, gradient, "gradients (RMS)"))
    return found
