"""Find hand-written attention in the trace and measure its logits.

A softmax whose input comes (through reshapes, masks, biases and scalar scalings) from a
batched matmul of two activations (q @ k^T, bmm, einsum) is attention. nn.MultiheadAttention
and F.scaled_dot_product_attention are single nodes in the trace and scale correctly inside,
so only hand-written attention is examined.
"""

from __future__ import annotations

import ast
import math
from dataclasses import dataclass

from gradlint.measure.numerics import PASS_THROUGH, SOFTMAXES, finite_absmax
from gradlint.measure.source import call_name, expression_at, replace_in_line, segment

MATMULS = {"matmul", "__matmul__", "bmm", "einsum"}
SCALES = {"mul", "mul_", "__mul__", "__rmul__", "__imul__", "div", "div_", "true_divide", "__truediv__",
          "__itruediv__"}
# Without 1/sqrt(d) the logits' standard deviation grows like sqrt(d) (docs/theory.md C4, G7:
# d = 64 gives std 8 and entropy 0.12 x ln T); below d = 16 the factor is at most 4 and the
# softmax stays soft at init.
MIN_HEAD_DIM = 16
# Masks (masked_fill with -inf, where) and additive biases (causal masks, ALiBi, relative positions).
MASKS = {"masked_fill", "masked_fill_", "where", "add", "add_", "__add__", "__radd__", "__iadd__"}
# A scale is a scalar, or one value per head: at most this many elements.
MAX_SCALE_ELEMENTS = 256
MAX_SEARCH_DEPTH = 12
# Attention collapse at init (docs/theory.md C4, Dehghani et al. 2023, Zhai et al. 2023): normalized
# attention entropy below 0.3 or logits above ~10. The entropy is the Renyi-2 entropy recovered
# from the softmax output's RMS (sum p^2 = T * mean p^2), a lower bound on Shannon's, so it is
# only read on rows long enough for the bound to be meaningful, and never through -inf masks.
MAX_LOGIT = 10.0
MIN_ENTROPY = 0.3
MIN_KEYS_FOR_ENTROPY = 8


@dataclass(frozen=True)
class AttentionScores:
    """One hand-written attention: its softmax, the q @ k^T matmul and what reaches the softmax."""

    softmax: object  # trace Node
    matmul: object  # trace Node
    head_dim: int
    scale: float | None  # product of the scalar factors on the way (None: one could not be measured)
    keys: int
    max_logit: float | None
    entropy: float | None  # Renyi-2 entropy / ln(keys)

    @property
    def expected_scale(self) -> float:
        return 1 / math.sqrt(self.head_dim)

    @property
    def unscaled(self) -> bool:
        """The logits are closer (in log scale) to unscaled than to 1/sqrt(d)."""
        return self.scale is not None and math.log(self.scale) > -0.25 * math.log(self.head_dim)

    @property
    def missing_scale(self) -> bool:
        """Unscaled, and the head is wide enough for that to matter."""
        return self.unscaled and self.head_dim >= MIN_HEAD_DIM

    @property
    def collapsed(self) -> bool:
        return (self.max_logit is not None and self.max_logit > MAX_LOGIT) or \
            (self.entropy is not None and self.entropy < MIN_ENTROPY)

    def describe_logits(self) -> str:
        parts = []
        if self.max_logit is not None:
            parts.append(f"max |logit| {self.max_logit:.3g}")
        if self.entropy is not None:
            parts.append(f"attention entropy {self.entropy:.2f} x ln({self.keys})")
        return ", ".join(parts) or "logit size not measurable through the mask"


def scores_fix_code(scores: AttentionScores, factor: str) -> str | None:
    """The user's line with the q @ k^T expression multiplied by `factor`."""

    def is_product(node) -> bool:
        return (isinstance(node, ast.BinOp) and isinstance(node.op, ast.MatMult)) or call_name(node) in MATMULS

    found = expression_at(scores.matmul.location, is_product)
    if found is None:
        return None
    expression, text = found
    return replace_in_line(scores.matmul.location, expression, text, f"({segment(text, expression)}) * {factor}")


def attention_scores(trace) -> list[AttentionScores]:
    """Every softmax fed by a q @ k^T matmul, with the scaling and logit size measured."""
    found = []
    for node in trace.nodes:
        if node.name not in SOFTMAXES or not node.producers or node.producers[0] < 0:
            continue
        path = _path_to_matmul(trace, node.producers[0], depth=0)
        if path is None:
            continue
        matmul = path[-1]
        scales = [_scale_factor(a, b) for a, b in zip(path, path[1:])]
        scales += [_operand_scale(trace, p) for p in matmul.producers if p >= 0]
        scale = None if any(s is None for s in scales) else math.prod(scales)
        found.append(_measured(trace, node, matmul, scale))
    return found


def _path_to_matmul(trace, index: int, depth: int) -> list | None:
    """Nodes from `index` up to a batched matmul of two activations, through masks and scalings."""
    node = trace.nodes[index]
    if node.name in MATMULS:
        return [node] if _is_query_key_product(node) else None
    if node.name not in PASS_THROUGH | SCALES | MASKS or depth >= MAX_SEARCH_DEPTH:
        return None
    for producer in node.producers:
        if producer >= 0:
            rest = _path_to_matmul(trace, producer, depth + 1)
            if rest is not None:
                return [node, *rest]
    return None


def _is_query_key_product(node) -> bool:
    """Both operands batched (..., T, d) tensors: a classifier head's x @ W has a 2-D W."""
    shapes = node.input_shapes
    return len(shapes) >= 2 and all(len(shape) >= 3 for shape in shapes[:2])


def _scale_factor(node, upstream_node) -> float | None:
    """The factor a scalar multiplication or division on the path applies (1 for other ops);
    None when its statistics cannot tell (e.g. after a -inf mask)."""
    if node.name not in SCALES or not _is_scalar_operation(node):
        return 1.0
    return _rms_ratio(node, upstream_node)


def _operand_scale(trace, index: int) -> float | None:
    """Scalar factors applied to q or k between their projection and the matmul."""
    factor, node = 1.0, trace.nodes[index]
    while node.name in PASS_THROUGH | SCALES and node.producers and node.producers[0] >= 0:
        upstream_node = trace.nodes[node.producers[0]]
        step = _scale_factor(node, upstream_node)
        if step is None:
            return None
        factor *= step
        node = upstream_node
    return factor


def _is_scalar_operation(node) -> bool:
    """x * c or x / c with c a Python number, a 0-d tensor or one value per head."""
    others = node.input_shapes[1:]
    return all(math.prod(shape) <= MAX_SCALE_ELEMENTS for shape in others)


def _rms_ratio(node, upstream_node) -> float | None:
    out, into = node.stats, upstream_node.stats
    if out is None or into is None or not (out.finite and into.finite) or into.rms <= 0 or out.rms <= 0:
        return None
    if not (math.isfinite(out.rms) and math.isfinite(into.rms)):
        return None
    return out.rms / into.rms


def _measured(trace, softmax, matmul, scale: float | None) -> AttentionScores:
    logits = trace.nodes[softmax.producers[0]]
    max_logit = finite_absmax(logits)
    masked = max_logit is None
    if masked and scale is not None and finite_absmax(matmul) is not None:
        max_logit = finite_absmax(matmul) * scale  # the mask only removes entries
    keys = softmax.output_shape[-1] if softmax.output_shape else 0
    entropy = None
    if not masked and keys >= MIN_KEYS_FOR_ENTROPY and softmax.stats is not None and softmax.stats.rms > 0:
        collision = keys * softmax.stats.rms ** 2  # mean over rows of sum_j p_j^2
        entropy = -math.log(min(max(collision, 1 / keys), 1.0)) / math.log(keys)
    return AttentionScores(softmax=softmax, matmul=matmul, head_dim=matmul.input_shapes[0][-1], scale=scale,
                           keys=keys, max_logit=max_logit, entropy=entropy)
