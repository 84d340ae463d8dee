"""What a layer converter hands back, and the Parameters converters share.

The contract between convert.py, which assembles the module, and the converters in layers.py
and rnn.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn

from gradlint.onnx.graph import Graph, Node


class Unsupported(Exception):
    """A node no module or functional op can run; the message says which setting (may be empty)."""


@dataclass
class Layer:
    module: nn.Module
    op_type: str  # what the module replaces: "Gemm", "MatMul+Add"
    inputs: tuple[str, ...]  # runtime values passed to `prepare`, or straight to the module
    outputs: tuple[str, ...]  # the ONNX values the layer produces, in order
    sources: dict[str, str] = field(default_factory=dict)  # module parameter name -> ONNX initializer
    # Other nodes this layer also computes: the Add of MatMul+Add after it, the Transpose of its weight before it.
    absorbed: tuple[Node, ...] = ()
    prepare: Callable | None = None  # runtime inputs -> the module's positional arguments
    finish: Callable | None = None  # the module's output -> the ONNX outputs, as a tuple


class Weights:
    """Hands out one nn.Parameter per static float value, created on first use and shared after,
    so weights tied in the graph stay tied between modules and functional steps."""

    def __init__(self, graph: Graph):
        self._graph = graph
        self.parameters: dict[str, nn.Parameter] = {}

    def shared(self, name: str) -> nn.Parameter:
        if name not in self.parameters:
            self.parameters[name] = nn.Parameter(self._graph.static(name))
        return self.parameters[name]

    def private(self, name: str, node: Node) -> torch.Tensor | None:
        """The value, for a converter that rearranges it into new Parameters (transposed,
        gates reordered); None when another node reads it too, which would untie them."""
        if name in self.parameters or not self._graph.used_only_by(name, node):
            return None
        return self._graph.static(name)


def static_float(graph: Graph, name: str, ndim: int | None = None) -> torch.Tensor | None:
    """A float initializer or Constant (of rank `ndim` when given); None for anything else."""
    value = graph.static(name) if name else None
    if value is None or not value.is_floating_point() or (ndim is not None and value.dim() != ndim):
        return None
    return value


def with_weights(cls: type[nn.Module], *args, weights: dict[str, torch.Tensor | None], **kwargs) -> nn.Module:
    """Construct `cls` on the meta device and install `weights` (None entries are skipped).

    The ONNX values replace every parameter, so the random initialization is skipped rather
    than computed and thrown away; torch.nn.utils.skip_init does the same but rejects the RNN
    classes' signatures and is slow on first use.
    """
    with torch.device("meta"):
        module = cls(*args, **kwargs)
    for name, value in weights.items():
        if value is not None:
            setattr(module, name, value)
    left = [name for name, t in (*module.named_parameters(), *module.named_buffers()) if t.is_meta]
    if left:
        raise AssertionError(f"{cls.__name__} converter left {', '.join(left)} uninitialized")
    return module
