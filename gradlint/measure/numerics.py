"""Value bounds along the trace's dataflow, for the op-level rules (numerics and attention):
which ops pass a value through, bound it, keep it non-negative or guard it with an epsilon, and
whether a node's value depends on the data at all."""

from __future__ import annotations

import math
from collections.abc import Iterable

from gradlint.trace import MODEL_INPUT, TRANSPARENT

# Tensor casts and copies: the value is unchanged for our purposes.
CASTS = {"float", "double", "half", "bfloat16", "to", "type", "type_as", "clone", "detach", "contiguous"}
PASS_THROUGH = TRANSPARENT | CASTS
# Ops that bound their output from above, so exp() of it cannot overflow.
BOUNDING = {
    "clamp", "clamp_", "clamp_max", "clamp_max_", "clip", "clip_", "minimum", "min", "tanh", "tanh_", "sigmoid",
    "sigmoid_", "hardtanh", "softsign", "log_softmax", "logsigmoid", "cos", "sin", "Tanh", "Sigmoid", "Hardtanh",
    "LogSoftmax", "LogSigmoid",
}
# Ops whose output is >= 0: their negation is bounded above by 0 (exp(-softplus(x)), exp(-|x|)).
NONNEGATIVE = {"softplus", "relu", "relu_", "abs", "abs_", "exp", "sigmoid", "norm", "linalg_vector_norm", "square",
               "Softplus", "ReLU", "softmax", "Softmax"}
NEGATIONS = {"neg", "neg_", "__neg__", "negative"}
# Ops that add a constant or clamp from below: what keeps a probability or a divisor away from 0.
EPS_GUARDS = {"add", "add_", "__add__", "__radd__", "__iadd__", "clamp", "clamp_", "clamp_min", "clamp_min_",
              "clip", "clip_", "maximum"}
SOFTMAXES = {"softmax", "_softmax", "Softmax"}


def upstream(trace, index: int, passable: Iterable[str] = PASS_THROUGH):
    """The first node at or above `index` that is not in `passable`, following each op's first
    dataflow input; None when the chain ends at a model input or constant."""
    passable = set(passable)
    while index >= 0:
        node = trace.nodes[index]
        if node.name not in passable:
            return node
        inputs = [p for p in node.producers if p >= 0]
        if not inputs:
            return None
        index = inputs[0]
    return None


def depends_on_data(trace, node) -> bool:
    """Whether `node` is computed from the model's input (not only from constants such as
    torch.tensor(d) or a parameter): some ancestor is the input or a layer."""

    seen, frontier = set(), [node.index]
    while frontier:
        index = frontier.pop()
        if index == MODEL_INPUT:
            return True
        if index < 0 or index in seen:
            continue
        seen.add(index)
        current = trace.nodes[index]
        if current.kind == "layer":
            return True
        frontier.extend(current.producers)
    return False


def input_node(trace, node, position: int = 0):
    """The node that produced `node`'s input at `position` (in the order of its producers)."""
    producers = node.producers
    if position >= len(producers) or producers[position] < 0:
        return None
    return trace.nodes[producers[position]]


def finite_absmax(node) -> float | None:
    """The node output's largest |value|, when it is finite (-inf attention masks make it not)."""
    stats = node.stats if node is not None else None
    if stats is None or not stats.finite or not math.isfinite(stats.absmax) or stats.absmax > 1e30:
        return None
    return stats.absmax
