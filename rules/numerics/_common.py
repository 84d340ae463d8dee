"""Shared helpers for the op-level rules (numerics and attention): following the trace's
dataflow upstream, and rewriting the user's source line for a fix.

Op nodes carry the source location of the user's call (line and the column where the
expression starts), so a fix can quote the user's own expression with the change applied.
"""

from __future__ import annotations

import ast
import functools
import math
from collections.abc import Callable, Iterable

from gradlint.findings import Location
from gradlint.trace import TRANSPARENT

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
    from gradlint.trace import MODEL_INPUT

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


# -- source rewriting for fixes ----------------------------------------------------------------------
@functools.lru_cache(maxsize=32)
def parsed_source(path: str) -> tuple[str, ast.Module] | None:
    """A file's text and syntax tree (cached); None when it cannot be read or parsed."""
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
        return text, ast.parse(text)
    except (OSError, SyntaxError, ValueError):
        return None


def expression_at(location: Location, accept: Callable[[ast.AST], bool]) -> tuple[ast.AST, str] | None:
    """The outermost expression starting at `location` that `accept`s, with the file's text."""
    parsed = parsed_source(location.path)
    if parsed is None:
        return None
    text, tree = parsed
    candidates = [node for node in ast.walk(tree) if isinstance(node, ast.expr)
                  and node.lineno == location.line and node.col_offset == location.col - 1 and accept(node)]
    if not candidates:
        return None
    outermost = max(candidates, key=lambda node: (node.end_lineno, node.end_col_offset))
    return outermost, text


def segment(text: str, node: ast.AST) -> str:
    return ast.get_source_segment(text, node) or ""


def replace_in_line(location: Location, node: ast.AST, text: str, replacement: str) -> str | None:
    """The source line at `location` with `node` (a single-line expression) replaced."""
    if node.lineno != node.end_lineno:
        return None
    line = text.splitlines()[node.lineno - 1]
    rest = line[node.end_col_offset:]
    if "#" in rest and not any(quote in rest for quote in "'\""):  # drop the line's trailing comment
        rest = rest[:rest.index("#")]
    return (line[:node.col_offset] + replacement + rest).strip()


def call_name(node: ast.AST) -> str | None:
    """`log` for torch.log(x), x.log() and log(x)."""
    if not isinstance(node, ast.Call):
        return None
    if isinstance(node.func, ast.Attribute):
        return node.func.attr
    return getattr(node.func, "id", None)


def call_argument(node: ast.Call) -> ast.AST | None:
    """The tensor a call applies to: torch.f(x) -> x; x.f() -> x."""
    if isinstance(node.func, ast.Attribute) and not node.args:
        return node.func.value
    return node.args[0] if node.args else None
