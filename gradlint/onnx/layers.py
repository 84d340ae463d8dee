"""ONNX nodes that have a natural torch module become that module, holding the ONNX weights.

gradlint's rules look at layer types (nn.Linear, nn.Conv2d, nn.LayerNorm, nn.ReLU, nn.LSTM,
...), so a converted model must contain the same modules the source model had. `LAYERS` maps
an op type to `convert(node, graph, weights) -> Layer | None`; None means "this node does not
fit the module" (e.g. its weight is computed at runtime), and the node then runs as a
functional op from ops.py. A converter raises `Unsupported` when neither can run it.
The recurrent layers live in rnn.py.
"""

from __future__ import annotations

import functools
import math
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from gradlint.onnx.conversion import Layer, Weights, static_float, with_weights
from gradlint.onnx.graph import Graph, Node
from gradlint.onnx.ops import spatial_pads, symmetric, torch_pad
from gradlint.onnx.rnn import convert_rnn
from gradlint.onnx.tensors import shortest as _shortest

LAYERS: dict[str, Callable[[Node, Graph, Weights], "Layer | None"]] = {}


def layer(*names: str):
    def register(fn):
        for name in names:
            LAYERS[name] = fn
        return fn

    return register


# -- activations ------------------------------------------------------------------------------

_PLAIN_ACTIVATIONS = {
    "Relu": nn.ReLU, "Tanh": nn.Tanh, "Sigmoid": nn.Sigmoid, "Softsign": nn.Softsign,
    "HardSwish": nn.Hardswish, "Mish": nn.Mish,
    # ONNX Softplus has no beta; torch's threshold=20 switch to identity is exact in float32.
    "Softplus": nn.Softplus,
}
_SELU = (1.67326319217681884765625, 1.05070102214813232421875)


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-6)  # attributes are float32


def _activation_module(node: Node) -> nn.Module | None:
    attr = node.attr
    if node.op_type in _PLAIN_ACTIVATIONS:
        return _PLAIN_ACTIVATIONS[node.op_type]()
    if node.op_type == "LeakyRelu":
        return nn.LeakyReLU(attr("alpha", 0.01))
    if node.op_type == "Elu":
        return nn.ELU(attr("alpha", 1.0))
    if node.op_type == "Celu":
        return nn.CELU(attr("alpha", 1.0))
    if node.op_type == "Gelu":
        return nn.GELU(approximate=attr("approximate", "none"))
    if node.op_type == "Selu" and _close(attr("alpha", _SELU[0]), _SELU[0]):
        return nn.SELU() if _close(attr("gamma", _SELU[1]), _SELU[1]) else None
    if node.op_type == "HardSigmoid" and _close(attr("alpha", 0.2), 1 / 6) and attr("beta", 0.5) == 0.5:
        return nn.Hardsigmoid()  # torch's is relu6(x + 3) / 6: alpha 1/6, beta 1/2 only
    return None


@layer(*_PLAIN_ACTIVATIONS, "LeakyRelu", "Elu", "Celu", "Gelu", "Selu", "HardSigmoid")
def _activation(node: Node, graph: Graph, weights: Weights) -> Layer | None:
    module = _activation_module(node)
    return None if module is None else Layer(module, node.op_type, node.inputs[:1], node.outputs)


@layer("PRelu")
def _prelu(node: Node, graph: Graph, weights: Weights) -> Layer | None:
    slope, rank = static_float(graph, node.input(1)), graph.ranks.get(node.inputs[0])
    # nn.PReLU holds one slope, or one per channel (dim 1); ONNX stores the latter as [C, 1, ...].
    per_channel = slope is not None and rank and slope.dim() == rank - 1 and all(d == 1 for d in slope.shape[1:])
    if slope is None or not (slope.numel() == 1 or per_channel):
        return None
    flat = weights.private(node.input(1), node)
    if flat is None:
        return None
    module = with_weights(nn.PReLU, slope.numel(), weights={"weight": nn.Parameter(flat.reshape(-1).clone())})
    return Layer(module, "PRelu", node.inputs[:1], node.outputs, {"weight": node.input(1)})


@layer("Dropout")
def _dropout(node: Node, graph: Graph, weights: Weights) -> Layer | None:
    ratio = graph.static(node.input(1)) if node.input(1) else None
    if (len(node.outputs) > 1 and graph.consumers(node.outputs[1])) or (node.input(1) and ratio is None):
        return None  # the mask is read, or the ratio is computed at runtime
    p = _shortest(float(ratio)) if ratio is not None else node.attr("ratio", 0.5)  # an attribute before opset 12
    # nn.Dropout follows the module's train()/eval(), as the source model's did.
    return Layer(nn.Dropout(p), "Dropout", node.inputs[:1], node.outputs[:1])


# -- linear layers and embeddings -------------------------------------------------------------


@layer("Gemm")
def _gemm(node: Node, graph: Graph, weights: Weights) -> Layer | None:
    """alpha * A @ B' + beta * C is an nn.Linear when B is a 2-D weight and C a bias vector."""
    b_name, c_name = node.input(1), node.input(2)
    b = static_float(graph, b_name, ndim=2)
    if node.attr("transA", 0) or b is None or graph.static(node.inputs[0]) is not None:
        return None
    trans_b, alpha = node.attr("transB", 0), node.attr("alpha", 1.0)
    out_features = b.shape[0] if trans_b else b.shape[1]
    # nn.Linear stores [out, in]: B itself when transB=1. Another layout, or alpha, goes into a
    # new Parameter, only safe when no other node reads B (the two would come untied).
    if trans_b and alpha == 1.0:
        weight = weights.shared(b_name)
    else:
        value = weights.private(b_name, node)
        weight = None if value is None else nn.Parameter((value if trans_b else value.t()).mul(alpha).contiguous())
    bias = _gemm_bias(node, graph, weights, out_features) if c_name else None
    if weight is None or (c_name and bias is None):
        return None
    module = with_weights(
        nn.Linear, weight.shape[1], out_features, bias=bias is not None, weights={"weight": weight, "bias": bias}
    )
    return Layer(module, "Gemm", node.inputs[:1], node.outputs, _sources(node, bias))


def _gemm_bias(node: Node, graph: Graph, weights: Weights, out_features: int) -> nn.Parameter | None:
    """C as a Linear bias: a vector of out_features, or a broadcast scalar / [1, N] row (folded,
    with beta, into a new Parameter). A per-row bias ([M, N]) is no Linear bias."""
    name, beta = node.input(2), node.attr("beta", 1.0)
    c = static_float(graph, name)
    if c is None or c.numel() not in (1, out_features) or (c.numel() > 1 and c.shape[-1] != out_features):
        return None
    if beta == 1.0 and c.shape == (out_features,):
        return weights.shared(name)
    value = weights.private(name, node)
    return None if value is None else nn.Parameter(value.mul(beta).reshape(-1).expand(out_features).clone())


@layer("MatMul")
def _matmul(node: Node, graph: Graph, weights: Weights) -> Layer | None:
    """x @ W (+ b) with a 2-D weight initializer: what torch.onnx.export writes for nn.Linear on
    inputs of rank other than 2 (it stores W transposed and adds the bias in a separate Add).
    Without constant folding the exporter keeps nn.Linear's [out, in] weight and transposes it
    in the graph: x @ Transpose(W) is then the Linear holding W itself."""
    if graph.static(node.inputs[0]) is not None:
        return None
    w_name, transpose = node.input(1), _weight_transpose(node, graph)
    if transpose is not None:
        weight = weights.shared(transpose.inputs[0])
        w_name = transpose.inputs[0]
    else:
        w = static_float(graph, w_name, ndim=2)
        value = weights.private(w_name, node) if w is not None else None
        if value is None:
            return None
        weight = nn.Parameter(value.t())  # a transposed view: the weight is not copied
    out_features, in_features = weight.shape
    add, b_name = _bias_add(node, graph, out_features)
    bias = weights.shared(b_name) if add else None
    module = with_weights(nn.Linear, in_features, out_features, bias=add is not None,
                          weights={"weight": weight, "bias": bias})
    before = (transpose,) if transpose is not None else ()
    if add is None:
        return Layer(module, "MatMul", node.inputs[:1], node.outputs, {"weight": w_name}, before)
    return Layer(module, "MatMul+Add", node.inputs[:1], add.outputs, {"weight": w_name, "bias": b_name},
                 (*before, add))


def _weight_transpose(matmul: Node, graph: Graph) -> Node | None:
    """The Transpose of a 2-D weight initializer that only this MatMul reads, if input 1 is one."""
    transpose = graph.producer(matmul.input(1))
    if transpose is None or transpose.op_type != "Transpose" or transpose.attr("perm", [1, 0]) != [1, 0]:
        return None
    if static_float(graph, transpose.inputs[0], ndim=2) is None or not graph.used_only_by(matmul.input(1), matmul):
        return None
    return transpose


def _bias_add(matmul: Node, graph: Graph, out_features: int) -> tuple[Node | None, str]:
    """The Add that only adds a 1-D bias to the MatMul's output, and the bias's name."""
    out = matmul.outputs[0]
    consumers = graph.consumers(out)
    if len(consumers) != 1 or out in graph.outputs or consumers[0].op_type != "Add":
        return None, ""
    add = consumers[0]
    other = add.inputs[1] if add.inputs[0] == out else add.inputs[0]
    bias = static_float(graph, other, ndim=1)
    if other == out or bias is None or bias.shape[0] != out_features:
        return None, ""
    return add, other


@layer("Gather")
def _embedding(node: Node, graph: Graph, weights: Weights) -> Layer | None:
    """Gather(table, ids) on axis 0 of a 2-D float initializer: how nn.Embedding is exported.
    Negative ids, which ONNX allows and nn.Embedding does not, are not remapped."""
    table = static_float(graph, node.input(0), ndim=2)
    if table is None or node.attr("axis", 0) != 0 or graph.static(node.input(1)) is not None:
        return None
    module = with_weights(nn.Embedding, *table.shape, weights={"weight": weights.shared(node.input(0))})
    return Layer(module, "Gather", (node.input(1),), node.outputs, {"weight": node.input(0)})


def _sources(node: Node, bias: torch.Tensor | None) -> dict[str, str]:
    """Module parameter -> ONNX initializer, for layers whose weight and bias are inputs 1 and 2."""
    return {"weight": node.input(1), **({"bias": node.input(2)} if bias is not None else {})}


def _weight_and_bias(node: Node, weights: Weights, bias: torch.Tensor | None) -> dict:
    """Inputs 1 and 2 (Conv, ConvTranspose, LayerNormalization) kept in their ONNX layout."""
    return {
        "weight": weights.shared(node.input(1)),
        "bias": weights.shared(node.input(2)) if bias is not None else None,
    }


# -- convolution ------------------------------------------------------------------------------

_CONV = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}
_CONV_T = {1: nn.ConvTranspose1d, 2: nn.ConvTranspose2d, 3: nn.ConvTranspose3d}


def _pad_input(node: Node, kernel, strides, dilations, x: torch.Tensor) -> tuple[torch.Tensor]:
    """Padding a conv module cannot hold (asymmetric, or auto_pad SAME against this input)."""
    return (F.pad(x, torch_pad(spatial_pads(node, x.shape[2:], kernel, strides, dilations))),)


@layer("Conv")
def _conv(node: Node, graph: Graph, weights: Weights) -> Layer | None:
    w = static_float(graph, node.input(1))
    bias = static_float(graph, node.input(2), ndim=1) if node.input(2) else None
    if w is None or w.dim() - 2 not in _CONV or (node.input(2) and bias is None):
        return None
    n, group = w.dim() - 2, node.attr("group", 1)
    kernel = list(w.shape[2:])
    strides, dilations = node.attr("strides", [1] * n), node.attr("dilations", [1] * n)
    padding, prepare = 0, None
    if node.attr("auto_pad", "NOTSET") in ("NOTSET", ""):
        padding = symmetric(node.attr("pads", [0] * 2 * n))
    if padding is None or node.attr("auto_pad", "NOTSET") in ("SAME_UPPER", "SAME_LOWER"):
        padding, prepare = 0, functools.partial(_pad_input, node, kernel, strides, dilations)
    module = with_weights(
        _CONV[n], w.shape[1] * group, w.shape[0], kernel, stride=strides, padding=padding,
        dilation=dilations, groups=group, bias=bias is not None, weights=_weight_and_bias(node, weights, bias),
    )
    return Layer(module, "Conv", node.inputs[:1], node.outputs, _sources(node, bias), prepare=prepare)


@layer("ConvTranspose")
def _conv_transpose(node: Node, graph: Graph, weights: Weights) -> Layer | None:
    w = static_float(graph, node.input(1))
    bias = static_float(graph, node.input(2), ndim=1) if node.input(2) else None
    if w is None or w.dim() - 2 not in _CONV_T or (node.input(2) and bias is None):
        return None
    n, group = w.dim() - 2, node.attr("group", 1)
    padding = symmetric(node.attr("pads", [0] * 2 * n))
    if padding is None or "output_shape" in node.attrs or node.attr("auto_pad", "NOTSET") not in ("NOTSET", ""):
        return None  # the functional version crops asymmetric padding
    module = with_weights(
        _CONV_T[n], w.shape[0], w.shape[1] * group, list(w.shape[2:]), stride=node.attr("strides", [1] * n),
        padding=padding, output_padding=node.attr("output_padding", [0] * n), groups=group,
        bias=bias is not None, dilation=node.attr("dilations", [1] * n), weights=_weight_and_bias(node, weights, bias),
    )
    return Layer(module, "ConvTranspose", node.inputs[:1], node.outputs, _sources(node, bias))


# -- normalization ----------------------------------------------------------------------------

_BATCH_NORM = {2: nn.BatchNorm1d, 3: nn.BatchNorm1d, 4: nn.BatchNorm2d, 5: nn.BatchNorm3d}


@layer("BatchNormalization")
def _batch_norm(node: Node, graph: Graph, weights: Weights) -> Layer | None:
    names = node.inputs[1:5]
    values = [static_float(graph, name, ndim=1) for name in names]
    if any(v is None for v in values) or any(graph.consumers(out) or out in graph.outputs for out in node.outputs[1:]):
        return None  # runtime statistics, or the updated running stats are read downstream
    running = [weights.private(name, node) for name in names[2:]]
    if any(r is None for r in running):
        return None
    # The rank picks the class rules expect (BatchNorm2d after a Conv2d); 2d when unknown.
    cls = _BATCH_NORM.get(graph.ranks.get(node.inputs[0]), nn.BatchNorm2d)
    # ONNX momentum weighs the old running value, torch's the new batch statistic. The module
    # normalizes with batch statistics in train() and running ones in eval(), like the source.
    module = with_weights(
        cls, values[0].shape[0], eps=node.attr("epsilon", 1e-5), momentum=1.0 - node.attr("momentum", 0.9),
        weights={
            "weight": weights.shared(names[0]), "bias": weights.shared(names[1]),
            "running_mean": running[0].clone(), "running_var": running[1].clone(),
            "num_batches_tracked": torch.tensor(0),
        },
    )
    sources = dict(zip(("weight", "bias", "running_mean", "running_var"), names))
    return Layer(module, "BatchNormalization", node.inputs[:1], node.outputs[:1], sources)


@layer("LayerNormalization")
def _layer_norm(node: Node, graph: Graph, weights: Weights) -> Layer | None:
    scale = static_float(graph, node.input(1))
    bias = static_float(graph, node.input(2)) if node.input(2) else None
    axis, rank = node.attr("axis", -1), graph.ranks.get(node.inputs[0])
    normalized = -axis if axis < 0 else (rank - axis if rank is not None else None)
    if scale is None or scale.dim() != normalized or (node.input(2) and (bias is None or bias.shape != scale.shape)):
        return None  # broadcast scales, runtime weights: functional
    if any(graph.consumers(out) or out in graph.outputs for out in node.outputs[1:]):
        return None  # Mean / InvStdDev outputs are read
    module = with_weights(
        nn.LayerNorm, tuple(scale.shape), eps=node.attr("epsilon", 1e-5), bias=bias is not None,
        weights=_weight_and_bias(node, weights, bias),
    )
    return Layer(module, "LayerNormalization", node.inputs[:1], node.outputs[:1], _sources(node, bias))


layer("LSTM", "GRU", "RNN")(convert_rnn)
