"""GL501 non-finite-values."""

from __future__ import annotations

import math
from typing import Any

from gradlint.rule import (
    Rule, RuleContext, Fix, Location, Observed, Severity, Stage, display_path, has_weight_matrix, init_call,
    is_library_file, label, sci,
)

# A non-finite loss or gradient at the first step ends training: the first optimizer step writes
# NaN into the weights (smdebug's ExplodingTensor, torch-audit's TA100; docs/theory.md, T2).
WEIGHT = 0.95
# tensor_stats replaces +-inf by +-3e38 before taking absmax: a non-finite node whose absmax is
# below this held only NaN, one at or above it held an infinity (an intended -inf mask, say).
INF_MARK = 1e38

# Ops whose value or derivative is singular at some inputs, by family; see _op_advice.
OP_FAMILIES = {
    "log": ("log", "log_", "log2", "log10"),
    "log1p": ("log1p", "log1p_"),
    "div": ("div", "div_", "__truediv__", "__rtruediv__", "__itruediv__", "true_divide", "reciprocal",
            "reciprocal_", "floor_divide", "__floordiv__"),
    "sqrt": ("sqrt", "sqrt_", "rsqrt", "rsqrt_"),
    "pow": ("pow", "pow_", "__pow__", "__rpow__"),
    "exp": ("exp", "exp_", "exp2", "expm1"),
    "norm": ("norm", "linalg_vector_norm", "vector_norm", "linalg_norm", "cdist", "pdist", "dist"),
    "arc": ("acos", "asin", "arccos", "arcsin", "atanh", "arctanh"),
    "softmax": ("softmax", "log_softmax", "_softmax"),
}
FAMILY_OF = {name: family for family, names in OP_FAMILIES.items() for name in names}


class NonFiniteValues(Rule):
    """
    ## What it does
    Runs one forward and backward pass at initialization and checks the loss, every recorded
    activation and every gradient for NaN or Inf. Points at the first operation, in forward
    order, whose output is non-finite (or, when the forward pass is clean, at the operation
    whose backward produces the first infinite gradient) and gives a fix specific to that
    operation: `log` of zero, division by zero, `sqrt` at zero, `exp` overflow.

    ## Why is this bad?
    A NaN or Inf in the loss or in any gradient is written into the weights by the first
    optimizer step, and every later step stays NaN. Typical sources: `torch.log(softmax(x))`
    when a probability underflows to 0, `x / x.sum()` with a zero sum, a distance
    `sqrt(sum(d**2))` whose derivative is infinite at d = 0, and `torch.where(mask, f(x), 0)`,
    which hides a NaN in the forward pass but not in the backward pass (0 * NaN = NaN).

    ## Example
    ```python
    def forward(self, x):
        d = (x[:, None] - x[None]).pow(2).sum(-1).sqrt()   # d/dx sqrt at d_ii = 0 is inf
    ```

    ## Use instead
    ```python
    def forward(self, x):
        d = ((x[:, None] - x[None]).pow(2).sum(-1) + 1e-12).sqrt()
    ```

    ## References
    - Micikevicius et al. 2018, Mixed Precision Training, arXiv:1710.03740 (non-finite checks, loss scaling)
    - PyTorch, `torch.autograd.detect_anomaly` and the `torch.where` NaN-gradient note
      (https://pytorch.org/docs/stable/generated/torch.where.html)
    - HF `DebugUnderflowOverflow` (reports the first module whose output is non-finite)
    - docs/theory.md, E3 (operations that overflow or divide by zero) and T2 (other tools' non-finite checks)
    """

    code = "GL501"
    name = "non-finite-values"
    family = "probe"
    severity = Severity.ERROR
    stages = frozenset({Stage.PROBE})

    INVALID = ('''
import torch
import torch.nn as nn

class LogFeatures(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(16, 32)
        self.head = nn.Linear(32, 4)

    def forward(self, x):
        features = torch.log(torch.relu(self.fc(x)))  # expect: GL501
        return self.head(features)

def build_model():
    return LogFeatures()
''', '''
import torch
import torch.nn as nn

class Prototypes(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Linear(16, 8)

    def forward(self, x):
        z = self.embed(x)
        distances = (z[:, None] - z[None]).pow(2).sum(-1).sqrt()  # expect: GL501
        return -distances

def build_model():
    return Prototypes()
''')
    VALID = ('''
import torch
import torch.nn as nn
import torch.nn.functional as F

class LogFeatures(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(16, 32)
        self.head = nn.Linear(32, 4)

    def forward(self, x):
        features = torch.log(F.softplus(self.fc(x)))
        return self.head(features)

def build_model():
    return LogFeatures()
''', '''
import torch
import torch.nn as nn

class Prototypes(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Linear(16, 8)

    def forward(self, x):
        z = self.embed(x)
        distances = ((z[:, None] - z[None]).pow(2).sum(-1) + 1e-12).sqrt()
        return -distances

def build_model():
    return Prototypes()
''')

    def check(self, ctx: RuleContext):
        probe = ctx.probe
        if probe.loss_finite and probe.grads_finite:
            return  # non-finite values that never reach the loss or a gradient (-inf masks) are by design
        obs = ctx.observed()
        summary = _summary(ctx)
        if not _inputs_finite(ctx.spec.inputs):
            yield self.finding(ctx, f"the example input contains NaN or Inf; {summary}",
                               location=ctx.spec.model_location,
                               fix=Fix("clean the data: drop or impute non-finite entries",
                                       "x = torch.nan_to_num(x)  # or filter the batch"), weight=WEIGHT)
            return
        held = _nonfinite_parameters(ctx)
        if held:  # the model starts with NaN/Inf in its own weights: no op or layer produced them
            yield self._in_parameters(ctx, held, summary)
            return
        origin = _forward_origin(obs)
        if origin is not None:
            masked = " and is masked out before the loss, but not in the backward pass (0 * NaN = NaN)" \
                if probe.loss_finite else ""
            yield self._at_node(ctx, obs, origin, f"{_first_nonfinite(obs, origin)}{masked}; {summary}")
        elif not probe.loss_finite:
            yield self._at_loss(ctx, obs, summary)
        else:
            yield self._in_backward(ctx, obs, summary)

    # -- the places a non-finite value can start -----------------------------------------------
    def _in_parameters(self, ctx: RuleContext, held: list, summary: str):
        path, kind, count, size = held[0]
        others = f" (and {len(held) - 1} more parameter{'s' if len(held) > 2 else ''})" if len(held) > 1 else ""
        return self.finding(
            ctx, f"{label(path)} holds {kind} before training starts ({count} of {size} entries){others}; {summary}",
            module=path.rpartition(".")[0], weight=WEIGHT,
            fix=Fix("initialize the parameter with finite values: look for a division by zero or a log of 0 in "
                    "the code that fills it, or a checkpoint saved after a divergence"),
        )

    def _at_node(self, ctx: RuleContext, obs: Observed, node: Any, message: str):
        fix = _op_advice(ctx, obs, node)
        location = node.location if node.kind == "op" else None
        return self.finding(ctx, message, module=node.path, location=location, fix=fix, weight=WEIGHT)

    def _at_loss(self, ctx: RuleContext, obs: Observed, summary: str):
        output = _final_node(obs)
        absmax = output.stats.absmax if output is not None and output.stats else float("nan")
        message = f"every activation is finite (model output absmax {sci(absmax)}) but {summary}"
        if ctx.spec.loss_fn is not None:
            fix = Fix("compute the loss from logits with the fused, stable functions instead of log/exp/divide "
                      "on probabilities", "loss = F.cross_entropy(logits, targets)  # or "
                      "F.binary_cross_entropy_with_logits")
            return self.finding(ctx, f"loss_fn returns a non-finite loss: {message}",
                                location=_loss_location(ctx), fix=fix, weight=WEIGHT)
        fix = Fix("the output is too large for the loss: bring the output layer to the critical scale",
                  init_call(None, f"{ctx.spec.expression(output.path)}.weight") if output is not None
                  and output.kind == "layer" else None)
        return self.finding(ctx, f"the default loss overflows: {message}",
                            module=output.path if output is not None else "", fix=fix, weight=WEIGHT)

    def _in_backward(self, ctx: RuleContext, obs: Observed, summary: str):
        origin = _backward_origin(obs)
        if origin is not None and origin.kind == "op":
            return self._at_node(ctx, obs, origin, f"the forward pass is finite up to the loss but the backward of "
                                                   f"{origin.name} yields an infinite gradient; {summary}")
        bad = _last_layer_with_nonfinite_grads(ctx, obs)
        path = bad.path if bad is not None else ""
        return self.finding(
            ctx, f"the forward pass is finite up to the loss but {summary}; the last layer (in forward order) "
                 f"with non-finite gradients is {path or 'the model'}: the op that produces them runs after it",
            module=path, weight=WEIGHT,
            fix=Fix("look for sqrt/norm/pow/div/log of values that can be 0 right after this layer and add an eps",
                    "torch.sqrt(x + 1e-12)"),
        )


# -- locating the origin ------------------------------------------------------------------------
def _forward_origin(obs: Observed) -> Any:
    """The first node whose non-finite output matters: the start of the chain of non-finite nodes
    that ends in the model output, else the first suspicious non-finite node anywhere (hidden
    from the loss by a mask but not from the backward pass)."""
    final = _final_node(obs)
    if final is not None and not final.stats.finite:
        return min(_nonfinite_ancestry(obs, final), key=lambda node: node.index)
    suspicious = [node for node in obs.trace.nodes if _is_nonfinite(node) and _suspicious(node)]
    return suspicious[0] if suspicious else None


def _nonfinite_parameters(ctx: RuleContext) -> list[tuple[str, str, int, int]]:
    """(path, "NaN" or "Inf", non-finite entries, entries) of each parameter holding NaN or Inf
    at initialization, found from the probe's RMS (non-finite for such a tensor) and confirmed
    on the tensor: a finite weight whose norm overflowed float32 is not one."""
    import torch

    held = []
    for stats in ctx.probe.params:
        if math.isfinite(stats.rms):
            continue
        parameter = ctx.model.get_parameter(stats.path).detach()
        count = int((~torch.isfinite(parameter)).sum())
        if count:
            kind = "NaN" if bool(parameter.isnan().any()) else "Inf"
            held.append((stats.path, kind, count, parameter.numel()))
    return held


def _nonfinite_ancestry(obs: Observed, node: Any) -> list:
    chain, frontier, seen = [], [node], set()
    while frontier:
        current = frontier.pop()
        if current.index in seen:
            continue
        seen.add(current.index)
        chain.append(current)
        frontier.extend(obs.node(p) for p in current.producers if p >= 0 and _is_nonfinite(obs.node(p)))
    return chain


def _suspicious(node: Any) -> bool:
    """Not an intended -inf mask: a layer, a singular op, or a value that holds NaN."""
    return node.kind == "layer" or node.name in FAMILY_OF or node.stats.absmax < INF_MARK


def _backward_origin(obs: Observed) -> Any:
    """The op whose backward turns a finite gradient into an infinite one: the consumer of the
    last node (in forward order) whose output gradient is infinite. NaN gradients are invisible
    here (the probe records their RMS as 0), hence the parameter-based fallback."""
    infinite = [node for node in obs.trace.nodes if obs.grad_rms.get(node.index) == math.inf]
    if not infinite:
        return None
    consumers = [c for c in obs.trace.consumers(infinite[-1]) if obs.grad_rms.get(c.index, 0.0) < math.inf]
    return consumers[0] if consumers else None


def _last_layer_with_nonfinite_grads(ctx: RuleContext, obs: Observed) -> Any:
    bad_modules = {p.module_path for p in ctx.probe.params if not p.grad_finite}
    layers = [node for node in obs.trace.layers if node.path in bad_modules]
    return layers[-1] if layers else None


def _final_node(obs: Observed) -> Any:
    floats = [node for node in obs.trace.nodes if node.stats is not None]
    return floats[-1] if floats else None


def _is_nonfinite(node: Any) -> bool:
    return node.stats is not None and not node.stats.finite


def _inputs_finite(inputs: tuple) -> bool:
    import torch

    return all(bool(torch.isfinite(t).all()) for t in inputs if isinstance(t, torch.Tensor) and t.is_floating_point())


# -- messages -------------------------------------------------------------------------------------
def _summary(ctx: RuleContext) -> str:
    probe = ctx.probe
    with_grads = [p for p in probe.params if p.grad_norm is not None]
    bad = sum(not p.grad_finite for p in with_grads)
    return f"loss = {sci(probe.loss)}, {bad} of {len(with_grads)} parameter gradients non-finite"


def _first_nonfinite(obs: Observed, node: Any) -> str:
    kind = "NaN" if node.stats.absmax < INF_MARK else "Inf/NaN"
    inputs = [obs.node(p) for p in node.producers if p >= 0 and obs.node(p).stats is not None]
    detail = f" from finite inputs (absmax {sci(max(i.stats.absmax for i in inputs))})" if inputs else ""
    what = f"layer {node.path}" if node.kind == "layer" else f"{node.name}"
    return f"{kind} first appears in the output of {what}{detail}"


def _loss_location(ctx: RuleContext) -> Location | None:
    code = getattr(ctx.spec.loss_fn, "__code__", None)
    if code is None or is_library_file(code.co_filename):
        return None
    return Location(display_path(code.co_filename), code.co_firstlineno, 1)


def _op_advice(ctx: RuleContext, obs: Observed, node: Any) -> Fix:
    """What to write instead, from what the op is and what fed it."""
    if node.kind == "layer":
        return _layer_advice(ctx, obs, node)
    family = FAMILY_OF.get(node.name)
    producers = {obs.node(p).name.lower() for p in node.producers if p >= 0}
    if family == "log" and "softmax" in producers:
        return Fix("log of a softmax underflows to log(0): take log_softmax of the logits",
                   "F.log_softmax(logits, dim=-1)")
    if family == "log" and producers & {"sigmoid"}:
        return Fix("log of a sigmoid underflows to log(0): use logsigmoid", "F.logsigmoid(x)")
    advice = {
        "log": Fix("log of a value that can be 0 or negative: clamp it, or keep it positive with softplus",
                   "torch.log(x.clamp_min(1e-6))"),
        "log1p": Fix("log1p of a value <= -1: clamp it", "torch.log1p(x.clamp_min(-1 + 1e-6))"),
        "div": Fix("division by a value that can be 0: add an eps to the denominator", "x / (denominator + 1e-8)"),
        "sqrt": Fix("sqrt at 0 has an infinite derivative (and sqrt of a negative is NaN): add an eps inside",
                    "torch.sqrt(x.clamp_min(0) + 1e-12)"),
        "pow": Fix("a fractional power of 0 or of a negative value: clamp the base", "x.clamp_min(1e-12) ** p"),
        "exp": Fix("exp overflows float32 above 88: subtract the max or use logsumexp", "torch.logsumexp(x, dim=-1)"),
        "norm": Fix("the gradient of a norm at 0 is NaN: add an eps under the square root",
                    "(x.pow(2).sum(-1) + 1e-12).sqrt()  # or F.normalize(x, eps=1e-12)"),
        "arc": Fix("acos/asin have infinite derivatives at +-1: clamp the argument",
                   "torch.acos(x.clamp(-1 + 1e-6, 1 - 1e-6))"),
        "softmax": Fix("a fully masked row: softmax over only -inf is NaN; mask with the dtype's min instead",
                       "scores.masked_fill(mask, torch.finfo(scores.dtype).min)"),
    }
    return advice.get(family, Fix("this op produced NaN/Inf from finite inputs: check its domain "
                                  "(run under torch.autograd.detect_anomaly() for the backward traceback)"))


def _layer_advice(ctx: RuleContext, obs: Observed, node: Any) -> Fix:
    expression = ctx.spec.expression(node.path)
    if has_weight_matrix(node.module) and getattr(node.module, "weight", None) is not None:
        activation = obs.trace.next_activation(node)
        return Fix(f"the output of {node.path} overflows float32: initialize it at the critical scale",
                   init_call(activation.name if activation else None, f"{expression}.weight"))
    return Fix(f"{node.path} turns finite inputs into NaN/Inf: its input is out of range; normalize it or "
               "fix the scale of the layers before it")
