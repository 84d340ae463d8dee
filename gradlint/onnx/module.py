"""The torch module an ONNX graph becomes: the graph's nodes as a list of steps, run in order on
the layers converted from them (convert.py builds it; structure.py regroups its steps into the
torch.nn modules the exporter unrolled).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import nn

from gradlint.errors import GradlintError, LoadError
from gradlint.onnx.graph import Node


class NodeError(LoadError):
    """A node failed while the converted model ran; names the node rather than a torch frame."""


@dataclass(frozen=True)
class Step:
    node: str  # the ONNX node name
    op_type: str
    inputs: tuple[str, ...]  # ONNX value names; "" for an omitted optional input
    outputs: tuple[str, ...]
    # A functional op: fn(op_node, *inputs), run inside the scope module at `scope` ("" for the
    # root). A layer: the path of its module, with the argument and result adapters. Steps keep
    # paths, not modules, so deepcopy stays correct.
    fn: Callable | None = None
    op_node: Node | None = None
    scope: str = ""
    module: str | None = None
    prepare: Callable | None = None
    finish: Callable | None = None


class OnnxScope(nn.Module):
    """A module of the source model that the graph keeps only as a name scope ("/blocks/blocks.0").

    It holds the layers converted from the nodes in that scope and runs the scope's functional
    steps, so a recorder sees each add, matmul and softmax inside the module whose forward ran
    it, as it would in the source model.
    """

    def forward(self, fn: Callable, *args: Any) -> Any:
        return fn(*args)


class OnnxModule(nn.Module):
    """An ONNX graph as a torch module.

    Layers sit at the module paths of the source model when the exporter kept them in node
    and initializer names (`blocks.0.conv1` for "/blocks/blocks.0/conv1/Conv"; see paths.py),
    inside OnnxScope modules; otherwise at the node's name made into an identifier.

    Attributes beyond nn.Module's:
      input_names / output_names  the graph's runtime inputs (forward's arguments) and outputs
      node_names    module path -> the ONNX node it came from (a layer), or the ONNX name scope
                    of an OnnxScope ("/blocks/blocks.0")
      op_types      layer path -> the ONNX op type it replaces ("MatMul+Add" for a fused pair)
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
        self._steps: list[Step] = []
        self._stored: dict[str, str] = {}  # ONNX value name -> path of the param or buffer holding it
        self._running: Step | None = None

    @property
    def current_node(self) -> str | None:
        """The ONNX node running now (None outside forward): lets a recorder name the node
        behind a functional op."""
        return self._running.node if self._running is not None else None

    def forward(self, *inputs: torch.Tensor) -> Any:
        if len(inputs) != len(self.input_names):
            names = ", ".join(self.input_names)
            raise TypeError(f"expected {len(self.input_names)} inputs ({names}), got {len(inputs)}")
        values: dict[str, Any] = {name: self._attribute(path) for name, path in self._stored.items()}
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

    def _run(self, step: Step, args: list) -> Any:
        if step.module is None:
            if step.scope:
                return self.get_submodule(step.scope)(step.fn, step.op_node, *args)
            return step.fn(step.op_node, *args)
        while args and args[-1] is None:  # trailing omitted inputs: the module's defaults
            args.pop()
        call_args = step.prepare(*args) if step.prepare else args
        out = self.get_submodule(step.module)(*call_args)
        return step.finish(out) if step.finish else out

    def _attribute(self, path: str) -> Any:
        owner, _, name = path.rpartition(".")
        return getattr(self.get_submodule(owner) if owner else self, name)

    def extra_repr(self) -> str:
        return f"inputs={self.input_names}, outputs={self.output_names}, steps={len(self._steps)}"
