"""GL853 exp-of-unbounded-input."""

from __future__ import annotations

import ast
import math

from gradlint.rule import (
    Rule, RuleContext, BOUNDING, Fix, NEGATIONS, NONNEGATIVE, Severity, Stage, call_argument, call_name,
    expression_at, finite_absmax, replace_in_line, segment, upstream,
)

EXPS = {"exp", "exp_", "exp2"}
# exp overflows float16 above ln(65504) = 11.09 and float32/bfloat16 above ln(3.4e38) = 88.72
# (docs/theory.md E3, C4). Its derivative is exp itself, so the same input scales the gradient by
# e^11 = 6.5e4 already.
FLOAT16_LIMIT = math.log(65504.0)
FLOAT32_LIMIT = math.log(3.4028e38)
MAX_SUBTRACTIONS = {"sub", "sub_", "__sub__"}
ROW_MAXIMA = {"max", "amax", "logsumexp", "max_values"}
CLAMP_TO = 10.0  # keeps exp below float16's 65504 with margin


class ExpOfUnboundedInput(Rule):
    """
    ## What it does
    Finds `exp` applied to a value that is neither max-subtracted (x - x.max()) nor bounded
    (clamp, tanh, sigmoid, log_softmax) in the traced forward pass, when that value already
    reaches |x| >= 11.09 on the example batch: exp overflows float16 there, and float32 at 88.7.

    ## Why is this bad?
    exp(x) and its gradient exp(x) grow by a factor e per unit of x. A hand-written softmax,
    a log-variance or a log-scale that drifts up during training overflows to inf and the loss
    becomes NaN; under autocast the limit is 11.09 (fp16 max 65504). Large exponents at
    initialization mean the drift has already begun. Subtracting the row maximum (what
    softmax and logsumexp do) or clamping keeps it finite.

    ## Example
    ```python
    weights = torch.exp(scores)          # scores reach 24 at init
    weights = weights / weights.sum(-1, keepdim=True)
    ```

    ## Use instead
    ```python
    weights = torch.softmax(scores, dim=-1)   # exp(scores - max) internally
    ```

    ## References
    - Micikevicius et al. 2018, Mixed Precision Training, arXiv:1710.03740
    - Wortsman et al. 2023, Small-scale proxies for large-scale Transformer training instabilities, arXiv:2309.14322
    - IEEE 754-2008 binary16/binary32 limits
    - docs/theory.md, E1 (format limits) and E3 (exp overflow)
    """

    code = "GL853"
    name = "exp-of-unbounded-input"
    family = "numerics"
    severity = Severity.WARNING
    stages = frozenset({Stage.TRACE})

    INVALID = ('''
import torch
import torch.nn as nn

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(16, 8)
        nn.init.normal_(self.fc.weight, std=2.0)

    def forward(self, x):
        scores = self.fc(x)
        weights = torch.exp(scores)  # expect: GL853
        return weights / weights.sum(-1, keepdim=True)

def build_model():
    return Net()
''',)
    VALID = ('''
import torch
import torch.nn as nn

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(16, 8)
        nn.init.normal_(self.fc.weight, std=2.0)

    def forward(self, x):
        scores = self.fc(x)
        weights = torch.exp(scores - scores.amax(-1, keepdim=True))
        return weights / weights.sum(-1, keepdim=True)

def build_model():
    return Net()
''',)

    def check(self, ctx: RuleContext):
        trace = ctx.trace
        for node in trace.ops:
            if node.name not in EXPS or not node.producers or node.producers[0] < 0:
                continue
            source = upstream(trace, node.producers[0])
            if source is None or _bounded(trace, source):
                continue
            absmax = finite_absmax(source)
            if absmax is None or absmax < FLOAT16_LIMIT:
                continue
            overflowed = absmax >= FLOAT32_LIMIT or (node.stats is not None and not node.stats.finite)
            yield self.finding(
                ctx,
                f"exp of an unbounded value that reaches |x| = {absmax:.3g} on the example batch: exp overflows "
                f"float16 above {FLOAT16_LIMIT:.2f} and float32 above {FLOAT32_LIMIT:.1f}, and its gradient is "
                f"exp(x) = {_exp(absmax)}",
                location=node.location,
                module=node.path,
                fix=_fix(node),
                severity=Severity.ERROR if overflowed else Severity.WARNING,
                weight=_weight(absmax),
            )


def _bounded(trace, source) -> bool:
    """The exponent is bounded above: clamped/squashed, a negated non-negative value, or
    max-subtracted (x - x.max(...))."""
    if source.name in BOUNDING:
        return True
    if source.name in NEGATIONS and source.producers and source.producers[0] >= 0:
        negated = upstream(trace, source.producers[0])
        return negated is not None and negated.name in NONNEGATIVE
    if source.name in MAX_SUBTRACTIONS and len(source.producers) >= 2 and source.producers[1] >= 0:
        subtrahend = upstream(trace, source.producers[1])
        return subtrahend is not None and subtrahend.name in ROW_MAXIMA
    return False


def _fix(node) -> Fix:
    message = (f"subtract the row maximum (use torch.softmax / torch.logsumexp), or clamp the exponent "
               f"(max={CLAMP_TO:g} keeps exp below float16's 65504)")
    found = expression_at(node.location, lambda n: call_name(n) in EXPS)
    if found is None:
        return Fix(message)
    call, text = found
    argument = call_argument(call)
    if argument is None:
        return Fix(message)
    replacement = f"torch.exp({segment(text, argument)}.clamp(max={CLAMP_TO:g}))"
    if not isinstance(argument, (ast.Name, ast.Attribute, ast.Call, ast.Subscript)):
        replacement = f"torch.exp(({segment(text, argument)}).clamp(max={CLAMP_TO:g}))"
    return Fix(message, replace_in_line(node.location, call, text, replacement))


def _exp(value: float) -> str:
    return f"{math.exp(value):.3g}" if value < FLOAT32_LIMIT else "inf"


def _weight(absmax: float) -> float:
    """0.2 at the float16 limit, rising linearly to 0.9 at the float32 limit."""
    span = (absmax - FLOAT16_LIMIT) / (FLOAT32_LIMIT - FLOAT16_LIMIT)
    return min(0.9, 0.2 + 0.7 * max(0.0, span))
