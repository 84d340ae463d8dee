"""ONNX LSTM / GRU / RNN nodes as nn.LSTM / nn.GRU / nn.RNN (one layer each).

ONNX stores each direction's gate weights stacked in a different order than torch:
  LSTM  ONNX i, o, f, c      torch i, f, g(=c), o
  GRU   ONNX z, r, h         torch r, z, n(=h)
and one bias row per direction holding the input biases then the recurrent ones (torch's
bias_ih, bias_hh). torch's GRU applies the reset gate after the recurrent linear map, which
is ONNX's linear_before_reset=1 (what torch.onnx.export writes); =0 has no torch module.

Tensor layouts (layout=0): X [seq, batch, in], Y [seq, num_dirs, batch, hidden], Y_h / Y_c /
initial states [num_dirs, batch, hidden]. layout=1 (opset 14) puts batch first in all of them.
"""

from __future__ import annotations

import functools

import torch
from torch import nn

from gradlint.onnx.conversion import Layer, Unsupported, Weights, static_float, with_weights
from gradlint.onnx.graph import Graph, Node

# For each kind: the torch module, and where torch's gate blocks sit in the ONNX stack.
_KINDS = {
    "LSTM": (nn.LSTM, [0, 2, 3, 1]),
    "GRU": (nn.GRU, [1, 0, 2]),
    "RNN": (nn.RNN, [0]),
}
_DEFAULT_ACTIVATIONS = {"LSTM": ["Sigmoid", "Tanh", "Tanh"], "GRU": ["Sigmoid", "Tanh"]}


def convert_rnn(node: Node, graph: Graph, weights: Weights) -> Layer:
    cls, order = _KINDS[node.op_type]
    nonlinearity = _check(node)
    w, r = static_float(graph, node.input(1), ndim=3), static_float(graph, node.input(2), ndim=3)
    b = static_float(graph, node.input(3), ndim=2) if node.input(3) else None
    if w is None or r is None or (node.input(3) and b is None):
        raise Unsupported("weights computed at runtime")
    if any(weights.private(name, node) is None for name in node.inputs[1:4] if name):
        raise Unsupported("weights shared with other nodes")  # regated copies would untie them
    num_dirs, hidden = w.shape[0], node.attr("hidden_size", r.shape[-1])
    batch_first = node.attr("layout", 0) == 1
    extra = {"nonlinearity": nonlinearity} if node.op_type == "RNN" else {}
    params, sources = {}, {}
    for d in range(num_dirs):
        suffix = "_l0_reverse" if d else "_l0"
        blocks = {"weight_ih": (w[d], node.input(1)), "weight_hh": (r[d], node.input(2))}
        if b is not None:
            input_bias, recurrent_bias = b[d].chunk(2)
            blocks.update(bias_ih=(input_bias, node.input(3)), bias_hh=(recurrent_bias, node.input(3)))
        for name, (value, source) in blocks.items():
            params[name + suffix] = nn.Parameter(_reorder(value, order))
            sources[name + suffix] = source
    module = with_weights(
        cls, w.shape[2], hidden, bias=b is not None, batch_first=batch_first, bidirectional=num_dirs == 2,
        weights=params, **extra,
    )
    reverse = node.attr("direction", "forward") == "reverse"
    inputs = (node.inputs[0], node.input(5), node.input(6) if node.op_type == "LSTM" else "")
    return Layer(
        module, node.op_type, inputs, node.outputs, sources,
        prepare=functools.partial(_prepare, node.op_type == "LSTM", batch_first, reverse),
        finish=functools.partial(_finish, node.op_type == "LSTM", batch_first, reverse, num_dirs, hidden),
    )


def _check(node: Node) -> str:
    """Raise Unsupported for settings torch's modules lack; return the RNN nonlinearity."""
    if node.input(4):
        raise Unsupported("sequence_lens")
    if node.input(7):
        raise Unsupported("peephole weights")
    if node.attr("clip") is not None:
        raise Unsupported("clip")
    if node.attr("input_forget", 0):
        raise Unsupported("input_forget")
    if node.op_type == "GRU" and not node.attr("linear_before_reset", 0):
        raise Unsupported("linear_before_reset=0")
    directions = 2 if node.attr("direction", "forward") == "bidirectional" else 1
    activations = node.attr("activations")
    if node.op_type == "RNN":
        activations = activations or ["Tanh"] * directions
        if len(set(activations)) != 1 or activations[0] not in ("Tanh", "Relu"):
            raise Unsupported(f"activations {', '.join(activations)}")
        return activations[0].lower()
    if activations and activations != _DEFAULT_ACTIVATIONS[node.op_type] * directions:
        raise Unsupported(f"activations {', '.join(activations)}")
    return ""


def _reorder(value: torch.Tensor, order: list[int]) -> torch.Tensor:
    """Gate blocks stacked along dim 0, from ONNX order to torch's."""
    blocks = value.chunk(len(order))
    return torch.cat([blocks[i] for i in order]).contiguous()


def _prepare(lstm: bool, batch_first: bool, reverse: bool, x, h0=None, c0=None) -> tuple:
    if reverse:  # torch has no backward-only RNN: run a forward one over the reversed sequence
        x = torch.flip(x, [1 if batch_first else 0])
    if batch_first:  # initial states are batch-first too with layout=1; torch's never are
        h0, c0 = (s.transpose(0, 1).contiguous() if s is not None else None for s in (h0, c0))
    if lstm and (h0 is not None or c0 is not None):
        h0 = h0 if h0 is not None else torch.zeros_like(c0)
        c0 = c0 if c0 is not None else torch.zeros_like(h0)
        return x, (h0, c0)
    return (x,) if h0 is None else (x, h0)


def _finish(lstm: bool, batch_first: bool, reverse: bool, num_dirs: int, hidden: int, out) -> tuple:
    y, state = out
    states = state if lstm else (state,)
    if reverse:
        y = torch.flip(y, [1 if batch_first else 0])
    # torch concatenates directions on the feature axis; ONNX gives them their own axis.
    y = y.unflatten(-1, (num_dirs, hidden))
    if batch_first:
        return (y, *(s.transpose(0, 1) for s in states))
    return (y.transpose(1, 2), *states)
