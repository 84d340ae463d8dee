"""GL851 log-of-softmax."""

from __future__ import annotations

import ast

from gradlint.rule import (
    Rule, RuleContext, EPS_GUARDS, Fix, PASS_THROUGH, SOFTMAXES, Severity, Stage, call_argument, call_name,
    expression_at, finite_absmax, input_node, replace_in_line, segment, upstream,
)

LOGS = {"log", "log_", "log2", "log10"}
# softmax(x)_i underflows to 0 in float32 once x_i sits ~104 below the row max, and the
# gradient of log, 1/p, overflows float32 from a gap of ~88.7 (p < 2.9e-39); in float16 from
# a gap of ~17 (p < 6e-8, subnormal). The largest logit magnitude bounds the gap by 2x.
FLOAT32_GAP = 88.7
BASE_WEIGHT, MAX_WEIGHT = 0.15, 0.75


class LogOfSoftmax(Rule):
    """
    ## What it does
    Finds `log` applied to a softmax output (`torch.log(F.softmax(x))`, `x.softmax(-1).log()`,
    `torch.log(probs + 1e-9)` on a softmax) in the traced forward pass and points at the line.

    ## Why is this bad?
    softmax rounds small probabilities to 0 once a logit falls ~88-104 below the largest
    (float32; ~17 in float16), and log(0) = -inf: the loss and every gradient become NaN.
    Before that, d log(p)/dp = 1/p overflows. Logit gaps grow during training as the model
    becomes confident, so a model that is fine at initialization blows up later. log_softmax
    computes x - logsumexp(x) directly and stays finite (an added epsilon only hides the
    problem by clipping log-probabilities at log(eps)).

    ## Example
    ```python
    log_probs = torch.log(F.softmax(logits, dim=-1))
    ```

    ## Use instead
    ```python
    log_probs = F.log_softmax(logits, dim=-1)
    ```

    ## References
    - Goodfellow, Bengio, Courville 2016, Deep Learning, section 4.1 (overflow and underflow; softmax)
    - PyTorch documentation, torch.nn.functional.log_softmax ("numerically more stable than log(softmax(x))")
    - docs/theory.md, E3 (log of a softmax)
    """

    code = "GL851"
    name = "log-of-softmax"
    family = "numerics"
    severity = Severity.WARNING
    stages = frozenset({Stage.TRACE})

    INVALID = ('''
import torch
import torch.nn as nn
import torch.nn.functional as F

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        return torch.log(F.softmax(self.fc(x), dim=-1))  # expect: GL851

def build_model():
    return Net()
''',)
    VALID = ('''
import torch
import torch.nn as nn
import torch.nn.functional as F

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        return F.log_softmax(self.fc(x), dim=-1)

def build_model():
    return Net()
''',)

    def check(self, ctx: RuleContext):
        trace = ctx.trace
        for node in trace.ops:
            if node.name not in LOGS or not node.producers or node.producers[0] < 0:
                continue
            source = upstream(trace, node.producers[0], PASS_THROUGH | EPS_GUARDS)
            if source is None or source.name not in SOFTMAXES:
                continue
            guarded = upstream(trace, node.producers[0]).name in EPS_GUARDS
            logits = finite_absmax(input_node(trace, source))
            broken = node.stats is not None and not node.stats.finite
            gap = f"; logits already reach |x| = {logits:.3g} (a gap of up to {2 * logits:.3g})" if logits else ""
            eps = "; the added epsilon avoids -inf but clips log-probabilities at log(eps)" if guarded else ""
            yield self.finding(
                ctx,
                f"log of a softmax output: it turns into -inf (NaN gradients) once a logit falls ~{FLOAT32_GAP:g} "
                f"below the row's largest in float32, ~17 in float16{gap}{eps}",
                location=node.location,
                module=node.path,
                fix=_fix(node, source, ctx),
                severity=Severity.ERROR if broken else Severity.WARNING,
                weight=0.9 if broken else _weight(logits or 0.0),
            )


def _fix(log_node, softmax_node, ctx: RuleContext) -> Fix:
    message = "compute log-probabilities with log_softmax (x - logsumexp(x)), which never underflows"
    found = expression_at(log_node.location, lambda n: call_name(n) in LOGS)
    if found is None:
        return Fix(message, "F.log_softmax(logits, dim=-1)")
    log_call, text = found
    softmax_call = call_argument(log_call)
    if isinstance(softmax_call, ast.BinOp):  # log(probs + eps): the softmax is the operand that is a call
        softmax_call = next((side for side in (softmax_call.left, softmax_call.right) if isinstance(side, ast.Call)),
                            None)
    replacement = _log_softmax_call(softmax_call, text, softmax_node, ctx)
    code = replace_in_line(log_node.location, log_call, text, replacement) if replacement else None
    return Fix(message, code or "F.log_softmax(logits, dim=-1)")


def _log_softmax_call(softmax_call, text: str, softmax_node, ctx: RuleContext) -> str | None:
    """The softmax call's own text, calling log_softmax instead."""
    if not isinstance(softmax_call, ast.Call):
        return None
    if softmax_node.kind == "layer":  # self.softmax(x), an nn.Softmax
        if not softmax_call.args:
            return None
        dim = getattr(ctx.module_at(softmax_node.path), "dim", -1)
        return f"torch.log_softmax({segment(text, softmax_call.args[0])}, dim={dim})"
    if call_name(softmax_call) in ("softmax", "_softmax"):  # F.softmax(x, -1), torch.softmax(x, -1), x.softmax(-1)
        func = softmax_call.func
        head = segment(text, func.value) + "." if isinstance(func, ast.Attribute) else ""
        arguments = [segment(text, a) for a in softmax_call.args] + [segment(text, k) for k in softmax_call.keywords]
        return f"{head}log_softmax({', '.join(arguments)})"
    return None


def _weight(logit_absmax: float) -> float:
    """Grows from 0.15 with the logit gap already reached at init, to 0.75 at the float32 limit."""
    return min(MAX_WEIGHT, BASE_WEIGHT + (MAX_WEIGHT - BASE_WEIGHT) * 2 * logit_absmax / FLOAT32_GAP)
