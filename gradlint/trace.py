"""Record one forward pass: every executed layer and the functional ops between them.

Layers are recorded through module hooks; functional operations (residual adds, matmuls,
softmax, log, exp, division, activations called as functions) through a TorchFunctionMode.
Both run on the executed code path, so models with data-dependent control flow, which
torch.fx cannot trace symbolically, are recorded as well. Tensors are linked to the node that
produced them, giving a dataflow graph: rules ask "what consumes this layer's output?" and
"is this add a residual connection?".
"""

from __future__ import annotations

import functools
import sys
from dataclasses import dataclass, field
from typing import Any

from gradlint.findings import Location
from gradlint.locations import frame_location, is_library_file, user_frame

RELU_LIKE = {"ReLU", "ReLU6", "relu", "relu_", "relu6", "LeakyReLU", "leaky_relu", "Hardswish", "hardswish"}
SATURATING = {"Tanh", "tanh", "tanh_", "Sigmoid", "sigmoid", "sigmoid_", "Hardtanh", "hardtanh", "Softsign", "softsign"}
ACTIVATIONS = RELU_LIKE | SATURATING | {
    "GELU", "gelu", "SiLU", "silu", "ELU", "elu", "SELU", "selu", "CELU", "Mish", "mish", "Softplus", "softplus",
    "PReLU", "prelu",
}
MODEL_INPUT, CONSTANT = -1, -2
ADDS = {"add", "__add__", "__radd__", "__iadd__", "add_"}
# Ops that move or reshape data without changing it: looked through when following dataflow.
TRANSPARENT = {
    "view", "reshape", "flatten", "transpose", "permute", "contiguous", "squeeze", "unsqueeze", "__getitem__",
    "dropout", "Dropout", "Identity", "Flatten", "expand", "chunk", "split", "narrow", "select",
}


@dataclass(frozen=True)
class TensorStats:
    rms: float
    absmax: float
    finite: bool
    minimum: float = 0.0  # signed extremes: exp(-large) is harmless, exp(+large) overflows
    maximum: float = 0.0
    # Fraction of units (features or channels) that are zero for the whole batch (ReLU-like outputs).
    dead_fraction: float | None = None
    # Fraction of entries in the flat tails of a saturating activation.
    saturated_fraction: float | None = None
    # Fraction of entries exactly zero (sparse counts, ReLU outputs, padding).
    zero_fraction: float = 0.0


@dataclass(frozen=True)
class Node:
    """One executed layer call or functional op, in execution order."""

    index: int
    kind: str  # "layer" | "op"
    name: str  # layer class name (Linear) or op name (add, softmax)
    path: str  # layer: its module path; op: the path of the module whose forward ran it
    location: Location
    input_shapes: tuple[tuple[int, ...], ...]
    output_shape: tuple[int, ...] | None
    # Indices of the nodes whose outputs this node consumed; MODEL_INPUT and CONSTANT (parameters,
    # buffers, tensors created on the fly) stand for values no node produced.
    producers: tuple[int, ...]
    stats: TensorStats | None = None
    residual: bool = False  # an add whose operands are a value and something computed from it
    module: Any = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Trace:
    nodes: tuple[Node, ...]  # the model's forward, then the loss computed from its output
    forward_end: int | None = None  # nodes[:forward_end] ran inside the model's forward

    @property
    def forward_nodes(self) -> tuple[Node, ...]:
        return self.nodes[:self.forward_end]

    @functools.cached_property
    def output(self) -> Node | None:
        """The model's output: the last forward node whose value no later forward node consumed."""
        end = len(self.nodes) if self.forward_end is None else self.forward_end
        sinks = [node for node in self.nodes[:end]
                 if node.stats is not None and all(c.index >= end for c in self.consumers(node))]
        return sinks[-1] if sinks else None

    @functools.cached_property
    def layers(self) -> tuple[Node, ...]:
        """Each layer's first call, in execution order."""
        seen, layers = set(), []
        for node in self.nodes:
            if node.kind == "layer" and node.path not in seen:
                seen.add(node.path)
                layers.append(node)
        return tuple(layers)

    @property
    def ops(self) -> tuple[Node, ...]:
        return tuple(node for node in self.nodes if node.kind == "op")

    @functools.cached_property
    def _consumers(self) -> dict[int, list[int]]:
        consumers: dict[int, list[int]] = {}
        for node in self.nodes:
            for producer in node.producers:
                consumers.setdefault(producer, []).append(node.index)
        return consumers

    def consumers(self, node: Node) -> list[Node]:
        return [self.nodes[i] for i in self._consumers.get(node.index, [])]

    def next_activation(self, node: Node) -> Node | None:
        """The activation applied to this node's output, looking through reshapes and dropout."""
        frontier = self.consumers(node)
        while frontier:
            consumer = frontier.pop(0)
            if consumer.name in ACTIVATIONS:
                return consumer
            if consumer.name in TRANSPARENT:
                frontier.extend(self.consumers(consumer))
        return None

    @property
    def residual_adds(self) -> tuple[Node, ...]:
        return tuple(node for node in self.ops if node.residual)


def is_opaque(module: Any) -> bool:
    """Layers recorded as one node although they have children or run many ops internally."""
    import torch.nn as nn

    return isinstance(module, (nn.MultiheadAttention, nn.RNNBase))


@functools.cache
def is_library_class(cls: type) -> bool:
    """Classes from torch or other installed libraries (not from the user's own files)."""
    module = sys.modules.get(cls.__module__)
    filename = getattr(module, "__file__", None)
    return filename is None or is_library_file(filename)


def tensor_stats(tensor: Any, name: str) -> TensorStats | None:
    import torch

    if not isinstance(tensor, torch.Tensor) or not tensor.is_floating_point() or tensor.numel() == 0:
        return None
    with torch.no_grad():
        values = tensor.detach().float()
        finite = bool(torch.isfinite(values).all())
        safe = torch.nan_to_num(values, nan=0.0, posinf=3e38, neginf=-3e38)
        absmax = float(safe.abs().max())
        # RMS of the rescaled values: squaring values above ~1e19 would overflow float32.
        rms = absmax * float((safe / absmax).pow(2).mean().sqrt()) if absmax > 0 else 0.0
        stats = dict(rms=rms, absmax=absmax, finite=finite, minimum=float(safe.min()), maximum=float(safe.max()),
                     zero_fraction=float((values == 0).float().mean()))
        if name in RELU_LIKE and values.dim() >= 2:
            stats["dead_fraction"] = float((_unit_view(values) <= 0).all(dim=0).float().mean())
        elif name in SATURATING:
            low, high = (-0.99, 0.99) if name.lower().startswith(("tanh", "hardtanh", "softsign")) else (0.01, 0.99)
            stats["saturated_fraction"] = float(((values <= low) | (values >= high)).float().mean())
    return TensorStats(**stats)


def _unit_view(values: Any) -> Any:
    """Rows are samples (and positions), columns are units: features, or channels for conv maps."""
    if values.dim() == 2:
        return values
    if values.dim() == 3:  # (batch, sequence, features)
        return values.reshape(-1, values.shape[-1])
    return values.transpose(0, 1).reshape(values.shape[1], -1).T  # (batch, channels, *spatial)


def _tensors(value: Any) -> list:
    import torch

    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, (list, tuple)):
        return [t for item in value for t in _tensors(item)]
    if isinstance(value, dict):
        return [t for item in value.values() for t in _tensors(item)]
    return []


def _shape(value: Any) -> tuple[int, ...] | None:
    tensors = _tensors(value)
    return tuple(tensors[0].shape) if tensors else None


def _op_name(func: Any) -> str:
    name = getattr(func, "__name__", None) or str(func)
    if name == "__get__":  # property getters such as Tensor.shape
        return "__get__"
    return name


class Recorder:
    """Hooks and a function mode that build the node list during one forward pass."""

    def __init__(self, spec: Any, retain_grads: bool):
        self.spec = spec
        self.retain_grads = retain_grads
        self.nodes: list[Node] = []
        self.outputs: dict[int, Any] = {}  # node index -> the output tensor (for gradients later)
        self._producer: dict[int, int] = {}  # id(tensor) -> producing node index
        self._alive: list[Any] = []  # keeps recorded tensors alive so their ids stay unique
        self._stack: list[str] = []
        self._leaf_depth = 0
        self._paused = False
        self._paths = {module: path for path, module in spec.model.named_modules()}
        self._ancestors: dict[int, frozenset[int]] = {}

    # -- module hooks --------------------------------------------------------------------
    def _is_leaf(self, module: Any) -> bool:
        return is_opaque(module) or next(iter(module.children()), None) is None

    def _hides_ops(self, module: Any) -> bool:
        """Library leaves (nn.Linear, nn.LSTM) are one node; a leaf the user wrote (an RMSNorm
        holding one Parameter) is a node too, but the ops in its forward are recorded as well."""
        return self._is_leaf(module) and is_library_class(type(module))

    def pre_hook(self, module: Any, args: tuple) -> None:
        self._stack.append(self._paths.get(module, ""))
        if self._hides_ops(module):
            self._leaf_depth += 1

    def post_hook(self, module: Any, args: tuple, output: Any) -> None:
        path = self._stack.pop() if self._stack else ""
        if not self._is_leaf(module):
            return
        if self._hides_ops(module):
            self._leaf_depth -= 1
        if self._leaf_depth:
            return  # a leaf called inside an opaque layer (e.g. MultiheadAttention.out_proj)
        # The function mode is active in hooks: pause it so the statistics' own ops are not recorded.
        self._paused = True
        try:
            self._add_node("layer", type(module).__name__, path, self.spec.location_of(module), args, output, module)
        finally:
            self._paused = False

    # -- function mode -------------------------------------------------------------------
    def on_function(self, func: Any, args: tuple, kwargs: dict, output: Any) -> None:
        if self._leaf_depth or self._paused:
            return
        name = _op_name(func)
        if name.startswith("__get") or not _tensors(output):
            return
        inputs = (*args, *kwargs.values())
        frame = user_frame(sys._getframe(2))
        location = frame_location(frame) if frame is not None else self.spec.location_of(self.spec.model)
        path = self._stack[-1] if self._stack else ""
        self._add_node("op", name, path, location, inputs, output, None)

    # -- shared ---------------------------------------------------------------------------
    def _add_node(self, kind, name, path, location, inputs, output, module) -> None:
        index = len(self.nodes)
        in_tensors = _tensors(inputs)
        producers = tuple(dict.fromkeys(self._producer.get(id(t), CONSTANT) for t in in_tensors))
        out_tensors = _tensors(output)
        first = out_tensors[0] if out_tensors else None
        # Integer adds are shape arithmetic, not residual streams.
        residual = name in ADDS and first is not None and first.is_floating_point() and self._is_residual(producers)
        node = Node(
            index=index, kind=kind, name=name, path=path, location=location,
            input_shapes=tuple(tuple(t.shape) for t in in_tensors),
            output_shape=tuple(first.shape) if first is not None else None,
            producers=producers, stats=tensor_stats(first, name), residual=residual, module=module,
        )
        self.nodes.append(node)
        for tensor in out_tensors:
            self._producer[id(tensor)] = index
            self._alive.append(tensor)
        if first is not None and self.retain_grads and first.requires_grad and first.is_floating_point():
            first.retain_grad()
            self.outputs[index] = first

    def _is_residual(self, producers: tuple[int, ...]) -> bool:
        """x + f(x): one operand's producer is an ancestor of the other's (the model input counts)."""
        real = [p for p in producers if p >= 0]
        if len(real) < 2:
            return MODEL_INPUT in producers and len(real) == 1 and MODEL_INPUT in self._ancestors_of(real[0])
        a, b = real[0], real[1]
        return a in self._ancestors_of(b) or b in self._ancestors_of(a)

    def _ancestors_of(self, index: int) -> frozenset[int]:
        if index < 0:
            return frozenset()
        if index not in self._ancestors:
            result: set[int] = set()
            for producer in self.nodes[index].producers:
                result.add(producer)
                result |= self._ancestors_of(producer)
            self._ancestors[index] = frozenset(result)
        return self._ancestors[index]


def run_recorded(spec: Any, inputs: tuple, retain_grads: bool, then: Any = None,
                 kwargs: dict | None = None) -> tuple[Any, Any, Trace, Recorder]:
    """Run the model once on `inputs` (and keyword arguments `kwargs`), recording it, then
    `then(output)` (the loss) under the same recording: `log(softmax(x))` in a loss_fn is the
    user's code too. Returns (output, then's result, trace, recorder)."""
    from torch.overrides import TorchFunctionMode

    recorder = Recorder(spec, retain_grads)

    class _Mode(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            output = func(*args, **kwargs)
            recorder.on_function(func, args, kwargs, output)
            return output

    handles = []
    for module in spec.model.modules():
        handles.append(module.register_forward_pre_hook(recorder.pre_hook))
        handles.append(module.register_forward_hook(recorder.post_hook))
    kwargs = kwargs or {}
    for tensor in (*inputs, *kwargs.values()):
        recorder._producer[id(tensor)] = MODEL_INPUT
    try:
        with _Mode():
            try:
                output = spec.model(*inputs, **kwargs)
            except Exception as error:
                raise ForwardError(error) from error
            forward_end = len(recorder.nodes)
            result = then(output) if then is not None else None
    finally:
        for handle in handles:
            handle.remove()
    return output, result, Trace(tuple(recorder.nodes), forward_end), recorder


class ForwardError(Exception):
    """The model's forward raised (as opposed to the loss computed after it)."""

    def __init__(self, error: BaseException):
        super().__init__(str(error))
        self.error = error
