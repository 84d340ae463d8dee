"""A read-only view of an ONNX graph for the converter.

It answers the questions converters ask while deciding how to run a node: is this input a
static value (initializer or Constant), who else consumes it, what rank does a value have.
Constant nodes are evaluated here, so they never become runtime steps.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import onnx
import torch

from gradlint.onnx.ops import OPS
from gradlint.onnx.tensors import attributes, to_tensor

DEFAULT_DOMAINS = ("", "ai.onnx")
# Ops that only move data: folded when every input is static (see Graph._fold_static).
_FOLDABLE = {"Slice", "Concat", "Unsqueeze", "Squeeze", "Reshape", "Transpose", "Gather", "Split", "Cast",
             "Expand", "Flatten", "Shape", "Size"}


@dataclass(frozen=True)
class Node:
    """One ONNX node with decoded attributes and the opset its domain runs at."""

    name: str  # the ONNX name, or `<op_type>_<index>` when the node has none
    op_type: str
    domain: str
    inputs: tuple[str, ...]  # "" marks an omitted optional input
    outputs: tuple[str, ...]
    attrs: dict[str, Any] = field(hash=False, compare=False)
    opset: int = 0

    def attr(self, key: str, default: Any = None) -> Any:
        return self.attrs.get(key, default)

    def input(self, index: int) -> str:
        """The input name at `index`, or "" when omitted."""
        return self.inputs[index] if index < len(self.inputs) else ""

    @property
    def label(self) -> str:
        """The op type as users know it: domain-qualified outside the standard domain."""
        return self.op_type if self.domain in DEFAULT_DOMAINS else f"{self.domain}.{self.op_type}"


class Graph:
    def __init__(self, model: onnx.ModelProto):
        if model.functions:
            # Model-local functions are calls to subgraphs; inlining turns them into plain nodes.
            import onnx.inliner

            model = onnx.inliner.inline_local_functions(model)
        graph = model.graph
        opsets = {entry.domain: entry.version for entry in model.opset_import}
        self.opset = opsets.get("", opsets.get("ai.onnx", 1))
        # Initializers in graph order; torch tensors so converters can slice and transpose them.
        self.initializers: dict[str, torch.Tensor] = {t.name: to_tensor(t) for t in graph.initializer}
        self.constants: dict[str, torch.Tensor] = {}
        self.derived: set[str] = set()  # folded values computed from float initializers (weights)
        self._reader_ops: dict[str, set[str]] = {}
        for proto in graph.node:
            for name in proto.input:
                self._reader_ops.setdefault(name, set()).add(proto.op_type)
        self.inputs = [value for value in graph.input if value.name not in self.initializers]
        self.outputs = [value.name for value in graph.output]
        # Declared or inferred shapes (value_info after shape inference); None for a dynamic size.
        self.shapes = _shapes(graph)
        self.ranks = {name: len(shape) for name, shape in self.shapes.items()}
        self.nodes: list[Node] = []
        for index, proto in enumerate(graph.node):
            node = Node(
                name=proto.name or f"{proto.op_type}_{index}",
                op_type=proto.op_type,
                domain=proto.domain,
                inputs=tuple(proto.input),
                outputs=tuple(proto.output),
                attrs=attributes(proto),
                opset=opsets.get(proto.domain, self.opset),
            )
            if not self._fold(node):
                self.nodes.append(node)
        self._consumers: dict[str, list[Node]] = {}
        self._producers: dict[str, Node] = {}
        for node in self.nodes:
            for name in dict.fromkeys(node.inputs):
                self._consumers.setdefault(name, []).append(node)
            for name in node.outputs:
                if name:
                    self._producers[name] = node

    def _fold(self, node: Node) -> bool:
        """Evaluate nodes that need no runtime input; True when the node is done."""
        if node.label == "Constant":
            value = constant_value(node)
            if value is None:
                return False  # sparse or string constant: left in, reported as unsupported
            self.constants[node.outputs[0]] = value
            return True
        if node.label == "Identity" and node.inputs[0] in self.initializers:
            # torch.onnx.export deduplicates initializers with equal values (LayerNorm weights
            # that are all ones, the layers of nn.TransformerEncoder, which starts as copies)
            # and re-creates each duplicate as an Identity of the survivor. The source model
            # trains them separately, so each gets its own copy, hence its own Parameter.
            self.initializers[node.outputs[0]] = self.initializers[node.inputs[0]].clone()
            return True
        if node.label in _FOLDABLE and all(not name or self.static(name) is not None for name in node.inputs):
            return self._fold_static(node)
        return False

    def _fold_static(self, node: Node) -> bool:
        """A data-movement op on static values only: without constant folding, the exporter
        rearranges weights in the graph (the gate blocks of an LSTM's weights are Sliced and
        Concatenated before the LSTM node). The result is static, and a weight when its inputs
        are: the layer reading it holds it as a Parameter of its own. The Transpose of a weight
        that a MatMul reads stays: the MatMul's Linear holds the weight itself (layers._matmul)."""
        if node.label == "Transpose" and self._reader_ops.get(node.outputs[0], set()) <= {"MatMul"} and \
                self.is_weight(node.inputs[0]):
            return False
        if node.label == "Gather" and self.is_weight(node.inputs[0]):
            return False  # an embedding lookup (of fixed positions): the table stays one weight
        try:
            out = OPS[node.op_type](node, *(self.static(name) if name else None for name in node.inputs))
        except Exception:  # left to run, and to fail naming the node
            return False
        weight = any(name and self.is_weight(name) for name in node.inputs)
        for name, value in zip(node.outputs, out if isinstance(out, tuple) else (out,)):
            if name and isinstance(value, torch.Tensor):
                self.constants[name] = value
                if weight and value.is_floating_point():
                    self.derived.add(name)
        return all(not name or name in self.constants for name in node.outputs)

    def static(self, name: str) -> torch.Tensor | None:
        """The value of an initializer or a Constant output; None for runtime values."""
        if name in self.initializers:
            return self.initializers[name]
        return self.constants.get(name)

    def is_weight(self, name: str) -> bool:
        """A floating-point initializer, or a value folded from one: a trainable tensor."""
        if name in self.derived:
            return True
        value = self.initializers.get(name)
        return value is not None and value.is_floating_point()

    def consumers(self, name: str) -> list[Node]:
        return self._consumers.get(name, [])

    def producer(self, name: str) -> Node | None:
        """The node computing a runtime value; None for graph inputs and static values."""
        return self._producers.get(name)

    def used_only_by(self, name: str, node: Node) -> bool:
        """True when `node` is the only reader of `name` (so a converter may reshape it)."""
        return name not in self.outputs and all(other is node for other in self.consumers(name))


def constant_value(node: Node) -> torch.Tensor | None:
    attrs = node.attrs
    if "value" in attrs:
        return attrs["value"] if isinstance(attrs["value"], torch.Tensor) else None
    if "value_float" in attrs:
        return torch.tensor(attrs["value_float"], dtype=torch.float32)
    if "value_floats" in attrs:
        return torch.tensor(attrs["value_floats"], dtype=torch.float32)
    if "value_int" in attrs:
        return torch.tensor(attrs["value_int"], dtype=torch.int64)
    if "value_ints" in attrs:
        return torch.tensor(attrs["value_ints"], dtype=torch.int64)
    return None


def _shapes(graph: onnx.GraphProto) -> dict[str, tuple[int | None, ...]]:
    """Shapes of values declared or inferred (value_info after shape inference)."""
    shapes = {}
    for value in (*graph.input, *graph.value_info, *graph.output):
        tensor_type = value.type.tensor_type
        if tensor_type.HasField("shape"):
            shapes[value.name] = tuple(
                dim.dim_value if dim.HasField("dim_value") and dim.dim_value > 0 else None
                for dim in tensor_type.shape.dim
            )
    return shapes
