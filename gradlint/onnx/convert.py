"""Convert an ONNX graph into a torch nn.Module that gradlint can trace like any other model.

Each node becomes one step of `OnnxModule.forward`, run in graph order (ONNX graphs are
topologically sorted): a child module where torch has one (layers.py, rnn.py) or a functional
torch call (ops.py). Functional steps run in OnnxModule.forward itself, not inside wrapper
modules, because gradlint's recorder ignores functional ops inside leaf modules, and residual
adds, matmuls and softmaxes must stay visible to the rules.
"""

from __future__ import annotations

import keyword
import re
from dataclasses import dataclass
from typing import Any, Callable

import onnx
import torch
from torch import nn

from gradlint.errors import GradlintError, LoadError
from gradlint.onnx.conversion import Layer, Unsupported, Weights
from gradlint.onnx.graph import DEFAULT_DOMAINS, Graph, Node
from gradlint.onnx.inputs import example_inputs
from gradlint.onnx.layers import LAYERS
from gradlint.onnx.ops import CHECKS, OPS

__all__ = ["NodeError", "OnnxModule", "UnsupportedOpError", "example_inputs", "to_torch"]

_NODES_LISTED = 3  # per op type in the unsupported-op message


class UnsupportedOpError(LoadError):
    """Nodes the converter cannot run. `problems` maps an op type (with the setting at fault,
    if any) to its node names; the model proto itself is still fine for static analysis."""

    def __init__(self, problems: dict[str, list[str]]):
        self.problems = problems
        parts = []
        for op_type, nodes in problems.items():
            listed = ", ".join(nodes[:_NODES_LISTED])
            more = f" and {len(nodes) - _NODES_LISTED} more" if len(nodes) > _NODES_LISTED else ""
            parts.append(f"{op_type} (node{'s' if len(nodes) > 1 else ''} {listed}{more})")
        super().__init__("unsupported ONNX op(s): " + ", ".join(parts))


class NodeError(LoadError):
    """A node failed while the converted model ran; names the node rather than a torch frame."""


@dataclass(frozen=True)
class _Step:
    node: str  # the ONNX node name
    op_type: str
    inputs: tuple[str, ...]  # ONNX value names; "" for an omitted optional input
    outputs: tuple[str, ...]
    # A functional op: fn(op_node, *inputs). A layer: the child module's name, with the
    # argument and result adapters. Steps keep names, not modules, so deepcopy stays correct.
    fn: Callable | None = None
    op_node: Node | None = None
    module: str | None = None
    prepare: Callable | None = None
    finish: Callable | None = None


class OnnxModule(nn.Module):
    """An ONNX graph as a torch module.

    Attributes beyond nn.Module's:
      input_names / output_names  the graph's runtime inputs (forward's arguments) and outputs
      node_names    child module name -> the ONNX node it came from
      op_types      child module name -> the ONNX op type it replaces ("MatMul+Add" for a fused pair)
      param_sources parameter or buffer path -> the ONNX initializer (or Constant) it was made from;
                    a layer's weight may hold the initializer rearranged (transposed, gates reordered)
      current_node  the ONNX node whose step is running (during forward)
    """

    def __init__(self, input_names: list[str], output_names: list[str]):
        super().__init__()
        self.input_names = input_names
        self.output_names = output_names
        self.node_names: dict[str, str] = {}
        self.op_types: dict[str, str] = {}
        self.param_sources: dict[str, str] = {}
        self._steps: list[_Step] = []
        self._stored: dict[str, str] = {}  # ONNX value name -> attribute holding it (param or buffer)
        self._running: _Step | None = None

    @property
    def current_node(self) -> str | None:
        """The ONNX node running now (None outside forward): lets a recorder name the node
        behind a functional op, which runs in this module's forward, not in a child."""
        return self._running.node if self._running is not None else None

    def forward(self, *inputs: torch.Tensor) -> Any:
        if len(inputs) != len(self.input_names):
            names = ", ".join(self.input_names)
            raise TypeError(f"expected {len(self.input_names)} inputs ({names}), got {len(inputs)}")
        values: dict[str, Any] = {name: getattr(self, attr) for name, attr in self._stored.items()}
        values.update(zip(self.input_names, inputs))
        for step in self._steps:
            args = [values[name] if name else None for name in step.inputs]
            self._running = step
            try:
                out = self._run(step, args)
            except GradlintError:
                raise
            except Exception as error:
                first_line = (str(error).strip().splitlines() or [""])[0]
                message = f"ONNX node {step.node} ({step.op_type}) failed: {type(error).__name__}: {first_line}"
                raise NodeError(message) from error
            finally:
                self._running = None
            for name, value in zip(step.outputs, out if isinstance(out, tuple) else (out,)):
                if name:
                    values[name] = value
        outputs = tuple(values[name] for name in self.output_names)
        return outputs[0] if len(outputs) == 1 else outputs

    def _run(self, step: _Step, args: list) -> Any:
        if step.module is None:
            return step.fn(step.op_node, *args)
        while args and args[-1] is None:  # trailing omitted inputs: the module's defaults
            args.pop()
        call_args = step.prepare(*args) if step.prepare else args
        out = self._modules[step.module](*call_args)
        return step.finish(out) if step.finish else out

    def extra_repr(self) -> str:
        return f"inputs={self.input_names}, outputs={self.output_names}, steps={len(self._steps)}"


def to_torch(model: onnx.ModelProto) -> OnnxModule:
    """Build the module. Raises UnsupportedOpError listing every node it cannot run."""
    return _Builder(Graph(model)).build()


class _Builder:
    def __init__(self, graph: Graph):
        self.graph = graph
        self.weights = Weights(graph)
        self.module = OnnxModule([v.name for v in graph.inputs], list(graph.outputs))
        self.names = _Names(self.module)

    def build(self) -> OnnxModule:
        problems: dict[str, list[str]] = {}
        absorbed: set[int] = set()
        for node in self.graph.nodes:
            if id(node) in absorbed:
                continue
            try:
                step = self._step(node)
            except Unsupported as error:
                label = f"{node.label} with {error}" if str(error) else node.label
                problems.setdefault(label, []).append(node.name)
                continue
            if isinstance(step, Layer):
                absorbed.update(id(n) for n in step.absorbed)
                step = self._add_layer(node, step)
            self.module._steps.append(step)
        if problems:
            raise UnsupportedOpError(problems)
        self._store_static_values()
        return self.module

    def _step(self, node: Node) -> _Step | Layer:
        if node.domain not in DEFAULT_DOMAINS:
            raise Unsupported("")
        converter = LAYERS.get(node.op_type)
        layer = converter(node, self.graph, self.weights) if converter else None
        if layer is not None:
            return layer
        if node.op_type not in OPS:
            raise Unsupported("")
        reason = CHECKS[node.op_type](node) if node.op_type in CHECKS else None
        if reason:
            raise Unsupported(reason)
        return _Step(node.name, node.op_type, node.inputs, node.outputs, fn=OPS[node.op_type], op_node=node)

    def _add_layer(self, node: Node, layer: Layer) -> _Step:
        name = self.names.take(node.name)
        self.module.add_module(name, layer.module)
        self.module.node_names[name] = node.name
        self.module.op_types[name] = layer.op_type
        for param, source in layer.sources.items():
            self.module.param_sources[f"{name}.{param}"] = source
        return _Step(
            node.name, layer.op_type, layer.inputs, layer.outputs,
            module=name, prepare=layer.prepare, finish=layer.finish,
        )

    def _store_static_values(self) -> None:
        """Register the initializers and constants that steps read at runtime: float
        initializers (and weights modules share with steps) as Parameters, the rest as buffers.
        Initializers only layers read already live inside those layers."""
        read = {name for step in self.module._steps for name in step.inputs} | set(self.graph.outputs)
        graph, module = self.graph, self.module
        for name in [*graph.initializers, *graph.constants]:
            if name not in read:
                continue
            attr = self.names.take(name)
            if name in self.weights.parameters or graph.is_weight(name):
                module.register_parameter(attr, self.weights.shared(name))
            elif name in graph.initializers:
                module.register_buffer(attr, graph.initializers[name])
            else:  # Constant nodes are part of the program, not of the state
                module.register_buffer(attr, graph.constants[name], persistent=False)
            module._stored[name] = attr
            module.param_sources[attr] = name


class _Names:
    """Attribute names for children, parameters and buffers: ONNX names made into unique
    Python identifiers ("/layers.0/self_attn/MatMul" -> "layers_0_self_attn_MatMul")."""

    def __init__(self, module: nn.Module):
        self._module = module
        self._taken: set[str] = set()

    def take(self, onnx_name: str) -> str:
        base = re.sub(r"\W+", "_", onnx_name).strip("_") or "node"
        if base[0].isdigit() or keyword.iskeyword(base):
            base = "n_" + base
        name, counter = base, 1
        while name in self._taken or hasattr(self._module, name):
            counter += 1
            name = f"{base}_{counter}"
        self._taken.add(name)
        return name
