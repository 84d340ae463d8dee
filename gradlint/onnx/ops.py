"""ONNX operators as torch functional calls.

`OPS` maps an op type to `fn(node, *inputs) -> tensor | tuple of tensors`; `node` carries the
attributes and the opset, an omitted optional input arrives as None. The functions call
public torch functions (torch.add, torch.matmul, torch.softmax, ...), so gradlint's
TorchFunctionMode records them under the names its rules know (residual adds, matmul,
softmax, log, exp, div).

`CHECKS` maps an op type to `check(node) -> reason | None`: attribute settings an
implementation does not cover, found at conversion time rather than mid-forward.

Ops with a torch module are converted by layers.py. The functional versions here of Gemm,
MatMul, Conv, the normalizations, Gather, PRelu, Selu and HardSigmoid run the nodes that do
not fit a module (weights computed at runtime, shared weights, attribute values no module
has). Activations that always fit a module (Relu, Tanh, Gelu, ...) have no entry here.
"""

from __future__ import annotations

import functools
import math
from typing import TYPE_CHECKING, Any, Callable

import torch
import torch.nn.functional as F

from gradlint.onnx.tensors import torch_dtype

if TYPE_CHECKING:  # annotations only: graph.py folds constants with OPS, so it imports this module
    from gradlint.onnx.graph import Node

OpFn = Callable[..., Any]
OPS: dict[str, OpFn] = {}
CHECKS: dict[str, Callable[[Node], "str | None"]] = {}


def op(*names: str, check: Callable[[Node], "str | None"] | None = None) -> Callable[[OpFn], OpFn]:
    def register(fn: OpFn) -> OpFn:
        for name in names:
            OPS[name] = fn
            if check is not None:
                CHECKS[name] = check
        return fn

    return register


def ints(value: torch.Tensor | None) -> list[int] | None:
    """A shape, axes or indices input as Python ints (these are small CPU-side values)."""
    return None if value is None else [int(v) for v in value.reshape(-1).tolist()]


def axes_input(node: Node, value: torch.Tensor | None, since: int) -> list[int] | None:
    """Axes were an attribute before opset `since` and an input from it on."""
    return ints(value) if node.opset >= since else node.attr("axes")


# -- elementwise arithmetic and comparison ----------------------------------------------------


@op("Add")
def _add(node, a, b):
    return torch.add(a, b)


@op("Sub")
def _sub(node, a, b):
    return torch.sub(a, b)


@op("Mul")
def _mul(node, a, b):
    return torch.mul(a, b)


@op("Div")
def _div(node, a, b):
    if a.is_floating_point():
        return torch.div(a, b)
    return torch.div(a, b, rounding_mode="trunc")  # ONNX integer division truncates


@op("Mod")
def _mod(node, a, b):
    # fmod=0 takes the divisor's sign (Python's %), fmod=1 the dividend's (C's fmod).
    return torch.fmod(a, b) if node.attr("fmod", 0) else torch.remainder(a, b)


@op("Pow")
def _pow(node, base, exponent):
    return torch.pow(base, exponent).to(base.dtype)  # ONNX keeps the base's type


@op("Max")
def _max(node, *xs):
    return functools.reduce(torch.maximum, xs)


@op("Min")
def _min(node, *xs):
    return functools.reduce(torch.minimum, xs)


@op("Sum")
def _sum(node, *xs):
    return functools.reduce(torch.add, xs)


@op("Mean")
def _mean(node, *xs):
    return torch.div(functools.reduce(torch.add, xs), len(xs))


_COMPARE = {
    "Equal": torch.eq, "Less": torch.lt, "LessOrEqual": torch.le, "Greater": torch.gt,
    "GreaterOrEqual": torch.ge, "And": torch.logical_and, "Or": torch.logical_or, "Xor": torch.logical_xor,
}


@op(*_COMPARE)
def _compare(node, a, b):
    return _COMPARE[node.op_type](a, b)


@op("Not")
def _not(node, x):
    return torch.logical_not(x)


@op("Where")
def _where(node, condition, a, b):
    return torch.where(condition.bool(), a, b)


# -- elementwise math -------------------------------------------------------------------------

_UNARY = {
    "Abs": torch.abs, "Neg": torch.neg, "Exp": torch.exp, "Log": torch.log, "Sqrt": torch.sqrt,
    "Reciprocal": torch.reciprocal, "Erf": torch.erf, "Floor": torch.floor, "Ceil": torch.ceil,
    # ONNX Round rounds halves to even, as torch.round does.
    "Round": torch.round, "Sign": torch.sign, "Sin": torch.sin, "Cos": torch.cos, "Tan": torch.tan,
    "Asin": torch.asin, "Acos": torch.acos, "Atan": torch.atan, "Sinh": torch.sinh, "Cosh": torch.cosh,
    "Asinh": torch.asinh, "Acosh": torch.acosh, "Atanh": torch.atanh, "IsNaN": torch.isnan,
}


@op(*_UNARY)
def _unary(node, x):
    return _UNARY[node.op_type](x)


@op("Identity")
def _identity(node, x):
    return x


@op("IsInf")
def _isinf(node, x):
    positive, negative = node.attr("detect_positive", 1), node.attr("detect_negative", 1)
    if positive and negative:
        return torch.isinf(x)
    return torch.isposinf(x) if positive else torch.isneginf(x)


@op("Clip")
def _clip(node, x, low=None, high=None):
    if node.opset < 11:  # bounds were attributes
        low, high = node.attr("min"), node.attr("max")
    return torch.clamp(x, low, high)


@op("CumSum")
def _cumsum(node, x, axis):
    dim = int(axis)
    if node.attr("reverse", 0):
        x = torch.flip(x, [dim])
    out = torch.cumsum(x, dim)
    if node.attr("exclusive", 0):
        out = out - x
    return torch.flip(out, [dim]) if node.attr("reverse", 0) else out


# -- activations whose attribute values no torch module has (layers.py converts the rest) ------


@op("Selu")
def _selu(node, x):
    alpha, gamma = node.attr("alpha", 1.67326319217681884765625), node.attr("gamma", 1.05070102214813232421875)
    return gamma * torch.where(x > 0, x, alpha * torch.expm1(x))


@op("HardSigmoid")
def _hard_sigmoid(node, x):
    return torch.clamp(node.attr("alpha", 0.2) * x + node.attr("beta", 0.5), 0.0, 1.0)


@op("ThresholdedRelu")
def _thresholded_relu(node, x):
    return torch.where(x > node.attr("alpha", 1.0), x, torch.zeros_like(x))


@op("PRelu")
def _prelu(node, x, slope):
    return torch.where(x >= 0, x, x * slope)


def _softmax_like(fn: Callable, node: Node, x: torch.Tensor) -> torch.Tensor:
    if node.opset >= 13:
        return fn(x, node.attr("axis", -1))
    # Before opset 13 the input was flattened to 2-D at `axis` and normalized over the tail.
    axis = node.attr("axis", 1) % max(x.dim(), 1)
    flat = x.reshape(math.prod(x.shape[:axis]), -1)
    return fn(flat, 1).reshape(x.shape)


@op("Softmax")
def _softmax(node, x):
    return _softmax_like(torch.softmax, node, x)


@op("LogSoftmax")
def _log_softmax(node, x):
    return _softmax_like(torch.log_softmax, node, x)


@op("Dropout")
def _dropout(node, x, ratio=None, training_mode=None):
    # Reached only when the mask output is consumed; an inference graph keeps every unit.
    return x, torch.ones_like(x, dtype=torch.bool)


# -- linear algebra ---------------------------------------------------------------------------


@op("MatMul")
def _matmul(node, a, b):
    return torch.matmul(a, b)


@op("Gemm")
def _gemm(node, a, b, c=None):
    a = a.t() if node.attr("transA", 0) else a
    b = b.t() if node.attr("transB", 0) else b
    out = torch.matmul(a, b)
    alpha, beta = node.attr("alpha", 1.0), node.attr("beta", 1.0)
    if alpha != 1.0:
        out = out * alpha
    if c is not None:
        out = torch.add(out, c * beta if beta != 1.0 else c)
    return out


@op("Einsum")
def _einsum(node, *xs):
    return torch.einsum(node.attr("equation"), *xs)


# -- convolution, pooling, normalization ------------------------------------------------------


def spatial_pads(node: Node, in_shape, kernel, strides, dilations) -> list[int]:
    """ONNX pads [begin_1, ..., begin_n, end_1, ..., end_n], resolving auto_pad against the input."""
    auto_pad = node.attr("auto_pad", "NOTSET")
    if auto_pad in ("NOTSET", ""):
        return list(node.attr("pads", [0] * (2 * len(kernel))))
    if auto_pad == "VALID":
        return [0] * (2 * len(kernel))
    begins, ends = [], []
    for size, k, s, d in zip(in_shape, kernel, strides, dilations):
        total = max((math.ceil(size / s) - 1) * s + (k - 1) * d + 1 - size, 0)
        small, large = total // 2, total - total // 2
        begins.append(small if auto_pad == "SAME_UPPER" else large)  # UPPER puts the extra at the end
        ends.append(large if auto_pad == "SAME_UPPER" else small)
    return begins + ends


def symmetric(pads: list[int]) -> list[int] | None:
    """Per-dimension padding when begin == end everywhere (what torch layers accept), else None."""
    half = len(pads) // 2
    return pads[:half] if pads[:half] == pads[half:] else None


def torch_pad(pads: list[int]) -> list[int]:
    """ONNX [begins..., ends...] over leading dims -> F.pad's (last_begin, last_end, ...) order."""
    half = len(pads) // 2
    pairs = [(pads[i], pads[i + half]) for i in range(half)]
    return [p for pair in reversed(pairs) for p in pair]


def _window(node: Node, x: torch.Tensor, kernel: list[int]):
    n = len(kernel)
    strides = node.attr("strides", [1] * n)
    dilations = node.attr("dilations", [1] * n)
    pads = spatial_pads(node, x.shape[2:], kernel, strides, dilations)
    return strides, dilations, pads


_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
_CONV_T = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}


@op("Conv")
def _conv(node, x, weight, bias=None):
    kernel = list(weight.shape[2:])
    strides, dilations, pads = _window(node, x, kernel)
    padding = symmetric(pads)
    if padding is None:
        x, padding = F.pad(x, torch_pad(pads)), [0] * len(kernel)
    return _CONV[len(kernel)](x, weight, bias, strides, padding, dilations, node.attr("group", 1))


def _conv_transpose_check(node: Node) -> str | None:
    if "output_shape" in node.attrs or node.attr("auto_pad", "NOTSET") not in ("NOTSET", "", "VALID"):
        return "output_shape or auto_pad SAME"
    return None


@op("ConvTranspose", check=_conv_transpose_check)
def _conv_transpose(node, x, weight, bias=None):
    n = weight.dim() - 2
    strides, dilations = node.attr("strides", [1] * n), node.attr("dilations", [1] * n)
    pads = node.attr("pads", [0] * 2 * n) if node.attr("auto_pad", "NOTSET") != "VALID" else [0] * 2 * n
    out = _CONV_T[n](
        x, weight, bias, strides, 0, node.attr("output_padding", [0] * n), node.attr("group", 1), dilations
    )
    # Padding removes output rows; ONNX may remove a different count at each end, so crop here.
    index = [slice(None), slice(None)] + [slice(pads[i], out.shape[2 + i] - pads[i + n]) for i in range(n)]
    return out[tuple(index)]


_MAX_POOL = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}
_AVG_POOL = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}


def _max_pool_check(node: Node) -> str | None:
    if len(node.outputs) > 1 and node.outputs[1]:
        return "Indices output"  # ONNX indexes the whole tensor, torch each plane
    return None


@op("MaxPool", check=_max_pool_check)
def _max_pool(node, x):
    kernel = node.attr("kernel_shape")
    strides, dilations, pads = _window(node, x, kernel)
    padding = symmetric(pads)
    if padding is None or any(p > k // 2 for p, k in zip(padding, kernel)):  # torch's limit
        x, padding = F.pad(x, torch_pad(pads), value=float("-inf")), [0] * len(kernel)
    return _MAX_POOL[len(kernel)](x, kernel, strides, padding, dilations, ceil_mode=bool(node.attr("ceil_mode", 0)))


def _avg_pool_check(node: Node) -> str | None:
    if any(d != 1 for d in node.attr("dilations", [])):
        return "dilations"
    return None


@op("AveragePool", check=_avg_pool_check)
def _avg_pool(node, x):
    kernel = node.attr("kernel_shape")
    _, _, pads = _window(node, x, kernel)
    strides, ceil = node.attr("strides", [1] * len(kernel)), bool(node.attr("ceil_mode", 0))
    include_pad = bool(node.attr("count_include_pad", 0))
    pool = _AVG_POOL[len(kernel)]
    padding = symmetric(pads)
    if padding is not None and all(p <= k // 2 for p, k in zip(padding, kernel)):
        return pool(x, kernel, strides, padding, ceil, include_pad)
    # Padding torch cannot express: pad explicitly; without count_include_pad, divide by the
    # number of real (unpadded) elements in each window.
    summed = pool(F.pad(x, torch_pad(pads)), kernel, strides, 0, ceil, True)
    if include_pad:
        return summed
    ones = F.pad(torch.ones_like(x[:1, :1]), torch_pad(pads))
    return summed / pool(ones, kernel, strides, 0, ceil, True)


@op("GlobalAveragePool")
def _global_avg_pool(node, x):
    return torch.mean(x, dim=list(range(2, x.dim())), keepdim=True)


@op("GlobalMaxPool")
def _global_max_pool(node, x):
    return torch.amax(x, dim=list(range(2, x.dim())), keepdim=True)


@op("BatchNormalization")
def _batch_norm(node, x, scale, bias, mean, var):
    # Only for statistics computed at runtime; layers.py makes nn.BatchNorm from initializers.
    training = bool(node.attr("training_mode", 0))
    momentum = 1.0 - node.attr("momentum", 0.9)  # ONNX weighs the old running value
    out = F.batch_norm(x, mean, var, scale, bias, training, momentum, node.attr("epsilon", 1e-5))
    return (out, mean, var) if len(node.outputs) > 1 else out


@op("LayerNormalization")
def _layer_norm(node, x, scale, bias=None):
    axis = node.attr("axis", -1) % x.dim()
    shape = x.shape[axis:]
    eps = node.attr("epsilon", 1e-5)
    out = F.layer_norm(x, shape, scale.expand(shape), None if bias is None else bias.expand(shape), eps)
    if len(node.outputs) == 1:
        return out
    dims = list(range(axis, x.dim()))
    mean = x.mean(dims, keepdim=True)
    inv_std = torch.rsqrt(x.var(dims, keepdim=True, unbiased=False) + eps)
    return out, mean, inv_std


@op("InstanceNormalization")
def _instance_norm(node, x, scale, bias):
    return F.instance_norm(x, weight=scale, bias=bias, eps=node.attr("epsilon", 1e-5))


@op("GroupNormalization")
def _group_norm(node, x, scale, bias):
    groups, channels = node.attr("num_groups"), x.shape[1]
    if scale.numel() != channels:  # opset 18 gave one scale per group
        scale, bias = scale.repeat_interleave(channels // groups), bias.repeat_interleave(channels // groups)
    return F.group_norm(x, groups, scale, bias, node.attr("epsilon", 1e-5))


# -- reductions -------------------------------------------------------------------------------

_REDUCE = {
    "ReduceMean": lambda x, d, k: torch.mean(x, d, keepdim=k),
    "ReduceSum": lambda x, d, k: torch.sum(x, d, keepdim=k),
    "ReduceMax": lambda x, d, k: torch.amax(x, d, keepdim=k),
    "ReduceMin": lambda x, d, k: torch.amin(x, d, keepdim=k),
    "ReduceProd": lambda x, d, k: _prod(x, d, k),
    "ReduceL1": lambda x, d, k: torch.sum(torch.abs(x), d, keepdim=k),
    "ReduceL2": lambda x, d, k: torch.sqrt(torch.sum(x * x, d, keepdim=k)),
    "ReduceSumSquare": lambda x, d, k: torch.sum(x * x, d, keepdim=k),
    "ReduceLogSum": lambda x, d, k: torch.log(torch.sum(x, d, keepdim=k)),
    "ReduceLogSumExp": lambda x, d, k: torch.logsumexp(x, d, keepdim=k),
}


def _prod(x: torch.Tensor, dims: list[int], keepdim: bool) -> torch.Tensor:
    for dim in sorted((d % x.dim() for d in dims), reverse=True):
        x = torch.prod(x, dim, keepdim=keepdim)
    return x


@op(*_REDUCE)
def _reduce(node, x, axes=None):
    # ReduceSum took axes as an input from opset 13, the other reductions from opset 18.
    axes = axes_input(node, axes, 13 if node.op_type == "ReduceSum" else 18)
    if not axes:
        if node.attr("noop_with_empty_axes", 0):
            return x
        axes = list(range(x.dim()))  # torch reads an empty dim list as "all" only for some ops
    return _REDUCE[node.op_type](x, axes, bool(node.attr("keepdims", 1)))


@op("ArgMax", "ArgMin")
def _arg_reduce(node, x):
    axis, keepdims = node.attr("axis", 0) % x.dim(), bool(node.attr("keepdims", 1))
    fn = torch.argmax if node.op_type == "ArgMax" else torch.argmin
    if not node.attr("select_last_index", 0):
        return fn(x, axis, keepdim=keepdims)
    return x.shape[axis] - 1 - fn(torch.flip(x, [axis]), axis, keepdim=keepdims)


@op("TopK")
def _top_k(node, x, k):
    values, indices = torch.topk(
        x, int(k), node.attr("axis", -1), largest=bool(node.attr("largest", 1)), sorted=bool(node.attr("sorted", 1))
    )
    return values, indices


# -- shapes and data movement -----------------------------------------------------------------


@op("Shape")
def _shape(node, x):
    dims = list(x.shape)[node.attr("start", 0):node.attr("end", None)]
    return torch.tensor(dims, dtype=torch.int64, device=x.device)


@op("Size")
def _size(node, x):
    return torch.tensor(x.numel(), dtype=torch.int64, device=x.device)


@op("Reshape")
def _reshape(node, x, shape):
    dims = ints(shape)
    if not node.attr("allowzero", 0):  # 0 copies the input's dimension
        dims = [x.shape[i] if d == 0 else d for i, d in enumerate(dims)]
    return torch.reshape(x, dims)


@op("Flatten")
def _flatten(node, x):
    axis = node.attr("axis", 1) % (x.dim() + 1)
    return torch.reshape(x, (math.prod(x.shape[:axis]), math.prod(x.shape[axis:])))


@op("Transpose")
def _transpose(node, x):
    return torch.permute(x, node.attr("perm", list(range(x.dim()))[::-1]))


@op("Squeeze")
def _squeeze(node, x, axes=None):
    axes = axes_input(node, axes, 13)
    return torch.squeeze(x) if axes is None else torch.squeeze(x, tuple(axes))


@op("Unsqueeze")
def _unsqueeze(node, x, axes=None):
    axes = axes_input(node, axes, 13)
    rank = x.dim() + len(axes)
    for axis in sorted(a % rank for a in axes):  # axes index the output
        x = torch.unsqueeze(x, axis)
    return x


@op("Concat")
def _concat(node, *xs):
    return torch.cat(xs, node.attr("axis"))


@op("Split")
def _split(node, x, split=None):
    axis = node.attr("axis", 0)
    sizes = ints(split) if node.opset >= 13 else node.attr("split")
    if not sizes:
        # Equal parts; from opset 18 the last part may be smaller (ceil), as torch.split does.
        parts = node.attr("num_outputs", len(node.outputs))
        sizes = math.ceil(x.shape[axis] / parts)
    return tuple(torch.split(x, sizes, axis))


@op("Slice")
def _slice(node, x, starts=None, ends=None, axes=None, steps=None):
    if node.opset < 10:  # starts, ends, axes were attributes
        starts, ends, axes = node.attr("starts"), node.attr("ends"), node.attr("axes")
    else:
        starts, ends, axes, steps = ints(starts), ints(ends), ints(axes), ints(steps)
    axes = axes if axes is not None else list(range(len(starts)))
    steps = steps or [1] * len(starts)
    for start, end, axis, step in zip(starts, ends, axes, steps):
        # Python slices clamp out-of-range and negative bounds exactly as ONNX specifies.
        start, stop, step = slice(start, end, step).indices(x.shape[axis])
        if step > 0:
            x = x[(slice(None),) * (axis % x.dim()) + (slice(start, stop, step),)]
        else:  # torch slicing has no negative steps
            index = torch.arange(start, stop, step, device=x.device)
            x = torch.index_select(x, axis, index)
    return x


def _wrap(indices: torch.Tensor, size: int) -> torch.Tensor:
    """ONNX indices may count from the end."""
    return torch.where(indices < 0, indices + size, indices)


@op("Gather")
def _gather(node, x, indices):
    axis = node.attr("axis", 0) % x.dim()
    if indices.dim() == 0:
        # One index (shape arithmetic, q/k/v picked from a stacked projection): a plain select,
        # which gradlint's dataflow looks through like any other view.
        return torch.select(x, axis, int(indices))
    flat = torch.index_select(x, axis, _wrap(indices, x.shape[axis]).reshape(-1))
    return torch.reshape(flat, (*x.shape[:axis], *indices.shape, *x.shape[axis + 1:]))


@op("GatherElements")
def _gather_elements(node, x, indices):
    axis = node.attr("axis", 0)
    return torch.gather(x, axis, _wrap(indices, x.shape[axis]))


@op("GatherND", check=lambda node: "batch_dims" if node.attr("batch_dims", 0) else None)
def _gather_nd(node, x, indices):
    return x[tuple(torch.unbind(indices, -1))]


@op("ScatterND", check=lambda node: "reduction" if node.attr("reduction", "none") != "none" else None)
def _scatter_nd(node, x, indices, updates):
    out = x.clone()
    out[tuple(torch.unbind(indices, -1))] = updates
    return out


@op("ScatterElements")
def _scatter_elements(node, x, indices, updates):
    axis, reduction = node.attr("axis", 0), node.attr("reduction", "none")
    indices = _wrap(indices, x.shape[axis])
    if reduction == "none":
        return torch.scatter(x, axis, indices, updates)
    return torch.scatter_reduce(x, axis, indices, updates, {"add": "sum", "mul": "prod"}.get(reduction, reduction))


@op("Expand")
def _expand(node, x, shape):
    # ONNX Expand broadcasts both ways: a 1 in `shape` keeps the input's dimension.
    return x.expand(torch.broadcast_shapes(x.shape, tuple(ints(shape))))


@op("Tile")
def _tile(node, x, repeats):
    return torch.tile(x, tuple(ints(repeats)))


@op("Pad")
def _pad(node, x, pads=None, value=None, axes=None):
    if node.opset < 11:  # pads and value were attributes
        pads, value = node.attr("pads"), node.attr("value", 0.0)
    else:
        pads, value = ints(pads), (0.0 if value is None else value.item())
    axes = ints(axes)
    if axes is not None:  # opset 18: pads for the listed axes only
        full = [0] * (2 * x.dim())
        for i, axis in enumerate(axes):
            full[axis % x.dim()], full[axis % x.dim() + x.dim()] = pads[i], pads[i + len(axes)]
        pads = full
    pad = torch_pad(pads)
    while pad and pad[-2:] == [0, 0]:
        pad = pad[:-2]  # torch's reflect/replicate modes pad trailing dimensions only
    mode = {"constant": "constant", "reflect": "reflect", "edge": "replicate", "wrap": "circular"}[
        node.attr("mode", "constant")
    ]
    return F.pad(x, pad, mode, value) if mode == "constant" else F.pad(x, pad, mode)


@op("Cast")
def _cast(node, x):
    return x.to(torch_dtype(node.attr("to")))


@op("CastLike")
def _cast_like(node, x, like):
    return x.to(like.dtype)


@op("ConstantOfShape")
def _constant_of_shape(node, shape):
    value = node.attr("value", torch.zeros(1))
    return torch.full(tuple(ints(shape)), value.reshape(-1)[0].item(), dtype=value.dtype, device=shape.device)


@op("Range")
def _range(node, start, limit, delta):
    return torch.arange(start.item(), limit.item(), delta.item(), dtype=start.dtype, device=start.device)


@op("Trilu")
def _trilu(node, x, k=None):
    diagonal = 0 if k is None else int(k)
    return torch.triu(x, diagonal) if node.attr("upper", 1) else torch.tril(x, diagonal)


@op("NonZero")
def _nonzero(node, x):
    return torch.nonzero(x).t()


@op("OneHot")
def _one_hot(node, indices, depth, values):
    depth = int(depth)
    hot = F.one_hot(_wrap(indices.long(), depth), depth).bool()
    hot = torch.movedim(hot, -1, node.attr("axis", -1) % hot.dim())
    return torch.where(hot, values[1], values[0])


def _resize_check(node: Node) -> str | None:
    mode = node.attr("mode", "nearest")
    transform = node.attr("coordinate_transformation_mode", "half_pixel")
    if mode == "nearest" and (transform, node.attr("nearest_mode", "round_prefer_floor")) != ("asymmetric", "floor"):
        return "nearest mode other than asymmetric/floor"
    if mode != "nearest" and transform not in ("half_pixel", "pytorch_half_pixel", "align_corners"):
        return f"coordinate_transformation_mode {transform}"
    if node.opset < 11:
        return "opset < 11"
    return None


@op("Resize", check=_resize_check)
def _resize(node, x, roi=None, scales=None, sizes=None):
    mode = node.attr("mode", "nearest")
    spatial = x.dim() - 2
    if mode != "nearest":
        mode = {"linear": ("linear", "bilinear", "trilinear"), "cubic": (None, "bicubic", None)}[mode][spatial - 1]
    align = None if mode == "nearest" else node.attr("coordinate_transformation_mode") == "align_corners"
    if sizes is not None and sizes.numel():
        return F.interpolate(x, size=ints(sizes)[2:], mode=mode, align_corners=align)
    factors = [float(s) for s in scales.tolist()[2:]]
    return F.interpolate(x, scale_factor=factors, mode=mode, align_corners=align)
