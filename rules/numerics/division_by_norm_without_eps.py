"""GL852 division-by-norm-without-eps."""

from __future__ import annotations

import ast

from gradlint.rule import (
    Rule, RuleContext, EPS_GUARDS, Fix, MODEL_INPUT, Severity, Stage, call_argument, call_name, depends_on_data,
    expression_at, replace_in_line, segment, upstream,
)

DIVISIONS = {"div", "div_", "true_divide", "__truediv__", "__itruediv__"}  # the divisor is the second input
RECIPROCALS = {"reciprocal", "reciprocal_", "__rdiv__", "__rtruediv__"}  # the divisor is the only tensor input
# Ops whose output is a norm or standard deviation: zero for an all-zero (padded, dead) row.
NORMS = {"norm", "linalg_vector_norm", "vector_norm", "frobenius_norm", "std", "sqrt", "sqrt_"}
# rsqrt(u) is a division by sqrt(u): u is a mean square or variance, zero for a constant row.
RSQRTS = {"rsqrt", "rsqrt_"}
EPS = "1e-6"
# A zero row gives 0/0 = NaN in the forward pass and NaN gradients (d||x||/dx = x/||x||) for
# the whole batch: rare per step but fatal when it happens (padding, dead units, constant inputs).
WEIGHT, BROKEN_WEIGHT = 0.2, 0.9
# How likely a zero row is, from the example batch: with a fraction z of zero entries, a row of d
# entries is all zero with probability z^d if entries were independent (sparse counts make it
# likely: z = 0.94, d = 64 gives 2%; ReLU features, z = 0.5, d = 64, give 5e-20). Over the
# few hundred batches the risk covers, the chance that one appears is 1 - (1 - z^d)^(rows x steps).
HORIZON_STEPS = 300


class DivisionByNormWithoutEps(Rule):
    """
    ## What it does
    Finds divisions by a norm, standard deviation or square root with no epsilon or clamp in
    between (`x / x.norm(dim=-1, keepdim=True)`, `x / x.std()`, `x * torch.rsqrt(ms)`) in the
    traced forward pass, and points at the line. From the example batch it estimates how likely
    an all-zero row is over the next few hundred batches (the fraction of zero entries, raised
    to the row length): sparse inputs such as multi-hot tags or short bag-of-words documents make
    it an error.

    ## Why is this bad?
    The divisor is zero for any all-zero or constant row (padding, dead ReLU features, a
    constant input channel): the forward gives 0/0 = NaN, the gradient of the norm at zero is
    0/0 as well, and one such row turns every parameter's gradient into NaN. Library norms
    guard this with an epsilon (LayerNorm, F.normalize, RMSNorm all take `eps`).

    ## Example
    ```python
    x = x / x.norm(dim=-1, keepdim=True)
    ```

    ## Use instead
    ```python
    x = x / x.norm(dim=-1, keepdim=True).clamp_min(1e-6)   # or F.normalize(x, dim=-1)
    ```

    ## References
    - Ba, Kiros, Hinton 2016, Layer Normalization, arXiv:1607.06450 (the epsilon in the denominator)
    - Zhang & Sennrich 2019, Root Mean Square Layer Normalization, arXiv:1910.07467
    - PyTorch documentation, torch.nn.functional.normalize (eps)
    - docs/theory.md, E3 (division by a norm)
    """

    code = "GL852"
    name = "division-by-norm-without-eps"
    family = "numerics"
    severity = Severity.WARNING
    stages = frozenset({Stage.TRACE})

    INVALID = ('''
import torch
import torch.nn as nn

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(16, 32)
        self.head = nn.Linear(32, 4)

    def forward(self, x):
        h = torch.relu(self.fc(x))
        h = h / h.norm(dim=-1, keepdim=True)  # expect: GL852
        return self.head(h)

def build_model():
    return Net()
''',)
    VALID = ('''
import torch
import torch.nn as nn

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(16, 32)
        self.head = nn.Linear(32, 4)

    def forward(self, x):
        h = torch.relu(self.fc(x))
        h = h / h.norm(dim=-1, keepdim=True).clamp_min(1e-6)
        return self.head(h)

def build_model():
    return Net()
''',)

    def check(self, ctx: RuleContext):
        trace = ctx.trace
        for node in trace.ops:
            divisor = _unguarded_divisor(trace, node)
            if divisor is None:
                continue
            broken = node.stats is not None and not node.stats.finite
            kind = "1/sqrt of" if node.name in RSQRTS else "a division by"
            chance, evidence = _zero_row_chance(ctx, divisor)
            yield self.finding(
                ctx,
                f"{kind} {divisor.name}(...) with no epsilon: an all-zero or constant row makes it 0/0 = NaN, "
                f"forward and backward{' (the output is already non-finite on the example batch)' if broken else ''}"
                f"{evidence}",
                location=node.location,
                module=node.path,
                fix=_fix(node),
                severity=Severity.ERROR if broken or chance >= 0.5 else Severity.WARNING,
                weight=BROKEN_WEIGHT if broken else min(BROKEN_WEIGHT, max(WEIGHT, chance)),
            )


def _zero_row_chance(ctx: RuleContext, norm) -> tuple[float, str]:
    """The chance that a batch like the example one holds an all-zero row for the norm within
    HORIZON_STEPS steps (see above), and the message's account of it ("" when negligible)."""
    import math

    shape = norm.input_shapes[0] if norm.input_shapes else ()
    rows = math.prod(norm.output_shape) if norm.output_shape else 0
    if not shape or not rows or math.prod(shape) % rows:
        return 0.0, ""
    length = math.prod(shape) // rows
    zeros = _zero_fraction(ctx, norm)
    if zeros is None or zeros <= 0 or length <= 0:
        return 0.0, ""
    per_row = zeros ** length
    chance = -math.expm1(rows * HORIZON_STEPS * math.log1p(-min(per_row, 1 - 1e-12)))
    if chance < 0.01:
        return 0.0, ""
    return chance, (f"; {zeros:.0%} of its input entries are zero on the example batch, so a row of {length} is "
                    f"all zero with probability ~{per_row:.2g} (independent entries): "
                    f"~{rows * HORIZON_STEPS * per_row:.3g} such rows in {HORIZON_STEPS} batches like it")


def _zero_fraction(ctx: RuleContext, norm) -> float | None:
    """Zero fraction of the norm's input: a traced node's, or the model input's own."""
    import torch

    producer = norm.producers[0] if norm.producers else None
    if producer is not None and producer >= 0:
        stats = ctx.trace.nodes[producer].stats
        return stats.zero_fraction if stats is not None else None
    if producer == MODEL_INPUT:
        matching = [t for t in ctx.spec.inputs if isinstance(t, torch.Tensor) and tuple(t.shape) == norm.input_shapes[0]]
        if len(matching) == 1:
            return float((matching[0] == 0).float().mean())
    return None


def _unguarded_divisor(trace, node):
    """The norm-like node `node` divides by, when nothing adds an epsilon or clamps in between."""
    if node.name in DIVISIONS and len(node.input_shapes) >= 2 and len(node.producers) >= 2:
        start = node.producers[1]
    elif node.name in RECIPROCALS | RSQRTS and node.producers:
        start = node.producers[0]
    else:
        return None
    if start < 0:
        return None
    source = upstream(trace, start)
    if source is None or source.name in EPS_GUARDS or not depends_on_data(trace, source):
        return None
    if node.name in RSQRTS:
        return source  # rsqrt of anything unguarded: a mean square, a variance
    if source.name not in NORMS:
        return None
    if source.name.startswith("sqrt"):  # sqrt(var + eps) is guarded inside
        inner = upstream(trace, source.producers[0]) if source.producers and source.producers[0] >= 0 else None
        if inner is not None and inner.name in EPS_GUARDS:
            return None
    return source


def _fix(node) -> Fix:
    if node.name in RSQRTS:
        message = f"add an epsilon inside the square root: torch.rsqrt(ms + {EPS})"
        found = expression_at(node.location, lambda n: call_name(n) in RSQRTS)
        rewrite = (lambda call, text: f"torch.rsqrt({segment(text, call_argument(call))} + {EPS})")
    else:
        message = f"keep the divisor away from zero: .clamp_min({EPS}) (or F.normalize(x, dim=..., eps=...))"
        found = expression_at(node.location, _is_division)
        rewrite = _clamped_division
    if found is None:
        return Fix(message)
    expression, text = found
    replacement = rewrite(expression, text)
    return Fix(message, replace_in_line(node.location, expression, text, replacement) if replacement else None)


def _is_division(node: ast.AST) -> bool:
    return (isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div)) or call_name(node) in {"div", "true_divide"}


def _clamped_division(expression, text: str) -> str | None:
    if isinstance(expression, ast.BinOp):
        numerator, divisor = expression.left, expression.right
    elif len(expression.args) >= 2:  # torch.div(x, n)
        numerator, divisor = expression.args[0], expression.args[1]
    elif isinstance(expression.func, ast.Attribute) and expression.args:  # x.div(n)
        numerator, divisor = expression.func.value, expression.args[0]
    else:
        return None
    divisor_text = segment(text, divisor)
    if not isinstance(divisor, (ast.Name, ast.Attribute, ast.Call, ast.Subscript)):
        divisor_text = f"({divisor_text})"
    return f"{segment(text, numerator)} / {divisor_text}.clamp_min({EPS})"
