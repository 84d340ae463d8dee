"""Dataflow paths through the trace, shared by the depth and normalization rules.

The trace is a DAG in execution order (a node's producers come before it), so longest and
shortest paths are one pass of dynamic programming. Producer -1 is "not recorded" (the model
input, or a parameter/constant): paths start there.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from gradlint.trace import ACTIVATIONS, TRANSPARENT, Node, Trace

# Layers (and functional ops) with a weight matrix: each one is a step of depth.
WEIGHTED_LAYERS = frozenset({
    "Linear", "LazyLinear", "Bilinear", "Conv1d", "Conv2d", "Conv3d", "LazyConv1d", "LazyConv2d", "LazyConv3d",
    "ConvTranspose1d", "ConvTranspose2d", "ConvTranspose3d",
})
WEIGHTED_OPS = frozenset({"linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
                          "conv_transpose3d", "bilinear"})
NORM_OPS = frozenset({"batch_norm", "layer_norm", "group_norm", "instance_norm", "rms_norm"})
# Normalization layers by class name: torch's (BatchNorm2d, LayerNorm, RMSNorm, GroupNorm,
# InstanceNorm1d, SyncBatchNorm) and user leaf modules named the same way (LlamaRMSNorm, T5LayerNorm).
_NORM_LAYER = re.compile(r"Norm(\d+d)?$")
# Ops a residual stream passes through unchanged in kind: reshapes, dropout, pointwise activations.
STREAM_OPS = TRANSPARENT | ACTIVATIONS


def is_weighted(node: Node) -> bool:
    return node.name in (WEIGHTED_LAYERS if node.kind == "layer" else WEIGHTED_OPS)


def is_norm(node: Node) -> bool:
    if node.kind == "layer":
        return bool(_NORM_LAYER.search(node.name))
    return node.name in NORM_OPS


def is_batch_norm(node: Node) -> bool:
    return is_norm(node) and ("BatchNorm" in node.name or node.name == "batch_norm")


def is_layer_norm(node: Node) -> bool:
    """LayerNorm-type: per-token normalization (LayerNorm, RMSNorm), as in Transformers."""
    return is_norm(node) and ("LayerNorm" in node.name or "RMSNorm" in node.name
                              or node.name in {"layer_norm", "rms_norm"})


def producers(trace: Trace, node: Node) -> list[Node]:
    return [trace.nodes[i] for i in node.producers if i >= 0]


def longest_run(trace: Trace, counts: Callable[[Node], bool], breaks: Callable[[Node], bool]) -> tuple[Node, ...]:
    """The counted nodes on the dataflow path with the most of them, where a `breaks` node
    restarts the count (a normalization or a residual add ends a plain stretch)."""
    length: dict[int, int] = {}
    previous: dict[int, int | None] = {}
    for node in trace.nodes:
        if breaks(node):
            length[node.index], previous[node.index] = 0, None
            continue
        best = max((p for p in node.producers if p >= 0), key=lambda p: length[p], default=None)
        length[node.index] = (length[best] if best is not None else 0) + counts(node)
        previous[node.index] = best
    if not length:
        return ()
    end: int | None = max(length, key=length.get)
    path = []
    while end is not None:
        if counts(trace.nodes[end]):
            path.append(trace.nodes[end])
        end = previous[end]
    return tuple(reversed(path))


@dataclass(frozen=True)
class DepthProfile:
    """Weighted layers from the input to the output: on the longest path (compositional
    depth) and on the shortest, which takes every skip connection (the layers no skip bypasses)."""

    compositional: int
    skip_free: tuple[Node, ...]


def depth_profile(trace: Trace) -> DepthProfile:
    longest: dict[int, int] = {}
    shortest: dict[int, tuple[Node, ...]] = {}
    for node in trace.nodes:
        real = [p for p in node.producers if p >= 0]
        step = (node,) if is_weighted(node) else ()
        longest[node.index] = max((longest[p] for p in real), default=0) + len(step)
        shortest[node.index] = min((shortest[p] for p in real), key=len, default=()) + step
    if trace.output is None:
        return DepthProfile(0, ())
    output = trace.output.index
    return DepthProfile(longest[output], shortest[output])


def stream_source(trace: Trace, index: int) -> Node | None:
    """The node whose value reaches `index` unchanged in kind: look back through reshapes,
    dropout and activations. None when it is the model input or a parameter."""
    while index >= 0:
        node = trace.nodes[index]
        real = [p for p in node.producers if p >= 0]
        if node.name not in STREAM_OPS or len(real) != 1:
            return node
        index = real[0]
    return None


def skip_and_branch(trace: Trace, add: Node) -> tuple[int, int]:
    """The two operands of a residual add, as producer indices: (skip x, branch f(x)).
    The skip is the operand the other one was computed from."""
    first, second = (list(add.producers) + [-1, -1])[:2]
    if second < 0 <= first or (first >= 0 and second >= 0 and second in ancestors(trace, first)):
        return second, first
    return first, second


def ancestors(trace: Trace, index: int) -> set[int]:
    """Indices of every node the node at `index` was computed from (-1 included when it reads
    the input or a parameter)."""
    seen, frontier = set(), [index]
    while frontier:
        for producer in trace.nodes[frontier.pop()].producers:
            if producer not in seen:
                seen.add(producer)
                if producer >= 0:
                    frontier.append(producer)
    return seen


@dataclass(frozen=True)
class ResidualChain:
    """Residual adds along one stream, x_{k+1} = x_k + f_k(x_k), with nothing but reshapes and
    activations between one add's output and the next add's skip operand (no norm, no layer)."""

    adds: tuple[Node, ...]
    start: Node  # the stream's value entering the first add

    @property
    def end(self) -> Node:
        return self.adds[-1]


def residual_chains(trace: Trace) -> list[ResidualChain]:
    """The residual streams of the trace, each as the chain of adds along it, in execution order."""
    chains: dict[int, list[Node]] = {}  # last add index -> adds of its chain
    starts: dict[int, Node | None] = {}
    for add in trace.residual_adds:
        skip, _ = skip_and_branch(trace, add)
        source = stream_source(trace, skip)
        if source is not None and source.index in chains:
            adds = chains.pop(source.index)
            adds.append(add)
            chains[add.index] = adds
            starts[add.index] = starts.pop(source.index)
        else:
            chains[add.index] = [add]
            starts[add.index] = source
    result = []
    for last, adds in chains.items():
        start = starts[last]
        if start is None:  # the stream starts at the model input: measure from the first add's output
            start, adds = adds[0], adds[1:]
        if adds and start.stats is not None:
            result.append(ResidualChain(tuple(adds), start))
    return result


def branch_nodes(trace: Trace, add: Node) -> list[Node]:
    """The nodes of a residual add's branch f(x): what the branch operand was computed from,
    after the skip operand x was (the execution order is topological)."""
    skip, branch = skip_and_branch(trace, add)
    if branch < 0:
        return []
    return [trace.nodes[i] for i in sorted(ancestors(trace, branch) | {branch}) if i > skip]


def branch_tail(trace: Trace, add: Node) -> Node | None:
    """The last weighted or normalization layer of a residual add's branch: the layer whose
    zero initialization makes the block start as the identity (Fixup, zero-gamma)."""
    _, branch = skip_and_branch(trace, add)
    index = branch
    while index >= 0:
        node = trace.nodes[index]
        if node.kind == "layer" and (is_weighted(node) or is_norm(node)):
            return node
        real = [p for p in node.producers if p >= 0]
        if len(real) != 1:
            return None
        index = real[0]
    return None


def forward_reaches(trace: Trace, node: Node, stop: Callable[[Node], bool]) -> Iterator[Node]:
    """The first nodes downstream of `node` (breadth first) for which `stop` holds."""
    seen, frontier = {node.index}, list(trace.consumers(node))
    while frontier:
        consumer = frontier.pop(0)
        if consumer.index in seen:
            continue
        seen.add(consumer.index)
        if stop(consumer):
            yield consumer
        else:
            frontier.extend(trace.consumers(consumer))


def sited_path(spec, path: str) -> str:
    """`path`, or its nearest ancestor whose construction line is known.

    Modules cloned with copy.deepcopy (nn.TransformerEncoder's layers) have no construction
    site of their own; their container was built on the user's line.
    """
    sites = getattr(spec, "sites", None)
    if sites is None:
        return path
    candidate = path
    while candidate:
        if sites.get(spec.model.get_submodule(candidate)) is not None:
            return candidate
        candidate = candidate.rpartition(".")[0]
    return path
