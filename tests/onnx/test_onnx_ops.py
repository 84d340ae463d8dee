"""Single-node graphs: the converted module against onnx's reference evaluator.

These cover attribute settings and opset variants torch.onnx.export rarely writes (asymmetric
and SAME padding, negative slice steps, reverse RNNs, opset-11 Softmax, ...). Float inputs are
graph inputs; non-float ones, and float ones listed as weights, are initializers, so both the
module path (layers.py) and the functional path (ops.py) run.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from onnx import helper, numpy_helper
from onnx.reference import ReferenceEvaluator

from gradlint.onnx.convert import to_torch

rng = np.random.default_rng(0)


def f32(*shape):
    return rng.standard_normal(shape).astype(np.float32)


def i64(*values):
    return np.array(values, dtype=np.int64)


# (id, op type, inputs {name: array}, attributes, opset, names of float inputs stored as initializers)
CASES = [
    ("slice_negative_step", "Slice", {"x": f32(4, 6), "s": i64(-1), "e": i64(-100), "a": i64(1), "st": i64(-2)}, {}, 17, ()),
    ("slice_opset9_attrs", "Slice", {"x": f32(4, 6)}, {"starts": [1, 0], "ends": [3, 100], "axes": [0, 1]}, 9, ()),
    ("pad_reflect", "Pad", {"x": f32(1, 2, 4, 5), "p": i64(0, 0, 1, 2, 0, 0, 2, 1)}, {"mode": "reflect"}, 17, ()),
    ("pad_edge_axes", "Pad", {"x": f32(2, 4, 5), "p": i64(1, 0, 2, 3), "v": np.array(0, np.float32), "ax": i64(1, 2)},
     {"mode": "edge"}, 18, ("v",)),
    ("conv_asymmetric_pads", "Conv", {"x": f32(1, 2, 6, 6), "w": f32(4, 2, 3, 3), "b": f32(4)},
     {"pads": [0, 1, 2, 1]}, 17, ("w", "b")),
    ("conv_same_upper_stride2", "Conv", {"x": f32(1, 2, 7, 6), "w": f32(4, 1, 3, 2)},
     {"auto_pad": "SAME_UPPER", "strides": [2, 2], "group": 2}, 17, ("w",)),
    ("conv_same_lower_functional", "Conv", {"x": f32(1, 2, 7), "w": f32(3, 2, 4)},
     {"auto_pad": "SAME_LOWER", "dilations": [2]}, 17, ()),
    ("conv_transpose_module", "ConvTranspose", {"x": f32(1, 2, 4, 4), "w": f32(2, 3, 3, 3), "b": f32(3)},
     {"strides": [2, 2], "pads": [1, 1, 1, 1], "output_padding": [1, 1]}, 17, ("w", "b")),
    ("conv_transpose_asymmetric", "ConvTranspose", {"x": f32(1, 2, 4), "w": f32(2, 3, 3)},
     {"strides": [2], "pads": [0, 2]}, 17, ("w",)),
    ("max_pool_asymmetric_ceil", "MaxPool", {"x": f32(1, 2, 7, 7)},
     {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [0, 1, 1, 0], "ceil_mode": 1}, 17, ()),
    ("max_pool_1d_dilated", "MaxPool", {"x": f32(1, 2, 9)}, {"kernel_shape": [2], "dilations": [2]}, 17, ()),
    ("avg_pool_exclude_pad_asymmetric", "AveragePool", {"x": f32(1, 2, 6, 6)},
     {"kernel_shape": [3, 3], "pads": [0, 2, 1, 0]}, 17, ()),
    ("avg_pool_include_pad", "AveragePool", {"x": f32(1, 2, 6, 6)},
     {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1], "count_include_pad": 1}, 17, ()),
    ("global_max_pool", "GlobalMaxPool", {"x": f32(2, 3, 4, 5)}, {}, 17, ()),
    ("gather_negative_axis1", "Gather", {"x": f32(3, 5, 2), "i": i64(-1, 0, 4, -1).reshape(2, 2)}, {"axis": 1}, 17, ()),
    ("gather_scalar_index", "Gather", {"x": f32(3, 5), "i": np.array(2, np.int64)}, {}, 17, ()),
    ("embedding_gather", "Gather", {"w": f32(7, 3), "i": i64(1, 6, 0).reshape(3, 1)}, {}, 17, ("w",)),
    ("split_input_sizes", "Split", {"x": f32(2, 7), "s": i64(3, 4)}, {"axis": 1}, 13, ()),
    ("split_num_outputs_uneven", "Split", {"x": f32(5, 2)}, {"num_outputs": 2}, 18, ()),
    ("reduce_mean_axes_input", "ReduceMean", {"x": f32(2, 3, 4), "a": i64(0, -1)}, {"keepdims": 0}, 18, ()),
    ("reduce_sum_all", "ReduceSum", {"x": f32(2, 3, 4)}, {}, 13, ()),
    ("reduce_max_attr_axes", "ReduceMax", {"x": f32(2, 3, 4)}, {"axes": [1]}, 13, ()),
    ("reduce_l2", "ReduceL2", {"x": f32(2, 3, 4), "a": i64(2)}, {}, 18, ()),
    ("reduce_prod", "ReduceProd", {"x": f32(2, 3, 4), "a": i64(0, 2)}, {}, 18, ()),
    ("reduce_log_sum_exp", "ReduceLogSumExp", {"x": f32(2, 3), "a": i64(1)}, {"keepdims": 0}, 18, ()),
    ("log_softmax_axis0", "LogSoftmax", {"x": f32(2, 3, 4)}, {"axis": 0}, 17, ()),
    ("expand_both_ways", "Expand", {"x": f32(3, 1), "s": i64(2, 1, 4)}, {}, 17, ()),
    ("tile", "Tile", {"x": f32(2, 3), "r": i64(2, 1)}, {}, 17, ()),
    ("trilu_lower_k", "Trilu", {"x": f32(4, 5), "k": np.array(1, np.int64)}, {"upper": 0}, 17, ()),
    ("where", "Where", {"c": rng.random((3, 4)) > 0.5, "a": f32(3, 4), "b": f32(1, 4)}, {}, 17, ()),
    ("cumsum_exclusive_reverse", "CumSum", {"x": f32(3, 4), "a": np.array(1, np.int64)},
     {"exclusive": 1, "reverse": 1}, 17, ()),
    ("range_float", "Range", {"s": np.array(1.0, np.float32), "l": np.array(4.0, np.float32), "d": np.array(0.5, np.float32)},
     {}, 17, ("s", "l", "d")),
    ("constant_of_shape", "ConstantOfShape", {"s": i64(2, 3)},
     {"value": numpy_helper.from_array(np.array([2.5], np.float32))}, 17, ()),
    ("one_hot", "OneHot", {"i": i64(0, 2, -1), "d": np.array(4, np.int64), "v": np.array([0.0, 3.0], np.float32)},
     {"axis": 0}, 17, ("v",)),
    ("top_k_smallest", "TopK", {"x": f32(3, 6), "k": i64(2)}, {"largest": 0}, 17, ()),
    ("argmax_last_index", "ArgMax", {"x": np.array([[1, 3, 3], [2, 2, 0]], np.float32)},
     {"axis": 1, "select_last_index": 1}, 17, ()),
    ("einsum", "Einsum", {"a": f32(2, 3, 4), "b": f32(2, 4, 5)}, {"equation": "bij,bjk->bik"}, 17, ()),
    ("gather_elements", "GatherElements", {"x": f32(3, 4), "i": i64(0, 3, -1, 2, 1, 1).reshape(3, 2)}, {"axis": 1}, 17, ()),
    ("scatter_nd", "ScatterND", {"x": f32(4, 3), "i": i64(1, 3).reshape(2, 1), "u": f32(2, 3)}, {}, 17, ()),
    ("resize_nearest_scales", "Resize",
     {"x": f32(1, 2, 3, 3), "r": np.zeros(0, np.float32), "sc": np.array([1, 1, 2, 2], np.float32)},
     {"mode": "nearest", "coordinate_transformation_mode": "asymmetric", "nearest_mode": "floor"}, 17, ("r", "sc")),
    ("resize_linear_sizes", "Resize",
     {"x": f32(1, 2, 3, 4), "r": np.zeros(0, np.float32), "sc": np.zeros(0, np.float32), "sz": i64(1, 2, 5, 7)},
     {"mode": "linear"}, 17, ("r", "sc")),
    ("gemm_trans_a_functional", "Gemm", {"a": f32(4, 3), "b": f32(4, 5), "c": f32(5)},
     {"transA": 1, "alpha": 0.5, "beta": 2.0}, 17, ("b", "c")),
    ("gemm_alpha_beta_linear", "Gemm", {"a": f32(3, 4), "b": f32(4, 5), "c": f32(1, 5)},
     {"alpha": 0.5, "beta": 2.0}, 17, ("b", "c")),
    ("matmul_3d_weight_functional", "MatMul", {"a": f32(2, 3, 4), "b": f32(2, 4, 5)}, {}, 17, ("b",)),
    ("batch_norm_module", "BatchNormalization", {"x": f32(2, 3, 4), "s": f32(3), "b": f32(3), "m": f32(3),
                                                 "v": np.abs(f32(3)) + 0.5}, {"epsilon": 1e-3}, 17, ("s", "b", "m", "v")),
    ("layer_norm_two_axes", "LayerNormalization", {"x": f32(2, 3, 4), "s": f32(3, 4), "b": f32(3, 4)},
     {"axis": -2}, 17, ("s", "b")),
    ("layer_norm_broadcast_scale", "LayerNormalization", {"x": f32(2, 3, 4), "s": f32(4)}, {"axis": 1}, 17, ("s",)),
    ("instance_norm", "InstanceNormalization", {"x": f32(2, 3, 5), "s": f32(3), "b": f32(3)}, {}, 17, ("s", "b")),
    ("prelu_per_channel", "PRelu", {"x": f32(2, 3, 4, 4), "s": f32(3, 1, 1)}, {}, 17, ("s",)),
    ("hard_sigmoid_onnx_default", "HardSigmoid", {"x": f32(3, 4)}, {}, 17, ()),
    ("selu_custom", "Selu", {"x": f32(3, 4)}, {"alpha": 2.0}, 17, ()),
    ("hard_swish", "HardSwish", {"x": f32(3, 4) * 4}, {}, 17, ()),
    ("mish", "Mish", {"x": f32(3, 4)}, {}, 18, ()),
    ("softsign", "Softsign", {"x": f32(3, 4)}, {}, 17, ()),
    ("thresholded_relu", "ThresholdedRelu", {"x": f32(3, 4)}, {"alpha": 0.5}, 17, ()),
    ("dropout_ratio_input_eval", "Dropout", {"x": f32(3, 4), "r": np.array(0.3, np.float32)}, {}, 13, ("r",)),
    ("celu", "Celu", {"x": f32(3, 4)}, {"alpha": 0.5}, 17, ()),
    ("clip_opset11_inputs", "Clip", {"x": f32(3, 4), "lo": np.array(-0.5, np.float32)}, {}, 13, ("lo",)),
    ("clip_opset6_attrs", "Clip", {"x": f32(3, 4)}, {"min": -0.2, "max": 0.3}, 6, ()),
    ("div_int_truncates", "Div", {"a": i64(7, -7, 5), "b": i64(2, 2, -3)}, {}, 17, ()),
    ("mod_int_sign_of_divisor", "Mod", {"a": i64(7, -7, 5), "b": i64(3, 3, -3)}, {}, 17, ()),
    ("pow_mixed", "Pow", {"a": f32(3), "b": i64(2, 3, 1)}, {}, 17, ()),
    ("squeeze_opset11", "Squeeze", {"x": f32(1, 3, 1)}, {"axes": [0, -1]}, 11, ()),
    ("unsqueeze_negative", "Unsqueeze", {"x": f32(2, 3), "a": i64(-1, 0)}, {}, 17, ()),
    ("flatten_axis2", "Flatten", {"x": f32(2, 3, 4, 5)}, {"axis": 2}, 17, ()),
    ("reshape_zero_copies", "Reshape", {"x": f32(2, 3, 4), "s": i64(0, -1)}, {}, 17, ()),
    ("shape_start_end", "Shape", {"x": f32(2, 3, 4)}, {"start": 1, "end": -1}, 17, ()),
    ("cast_to_int", "Cast", {"x": f32(3) * 5}, {"to": 6}, 17, ()),
    ("group_norm_opset21", "GroupNormalization", {"x": f32(2, 4, 3), "s": f32(4), "b": f32(4)},
     {"num_groups": 2}, 21, ("s", "b")),
]


def _model(op_type, inputs, attrs, opset, weights, n_outputs):
    names = list(inputs)
    graph_inputs = [
        helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(a.dtype), a.shape)
        for n, a in inputs.items() if a.dtype.kind == "f" and n not in weights
    ]
    initializers = [numpy_helper.from_array(a, n) for n, a in inputs.items() if a.dtype.kind != "f" or n in weights]
    outputs = [f"y{i}" for i in range(n_outputs)]
    node = helper.make_node(op_type, names, outputs, name=f"/{op_type}", **attrs)
    graph = helper.make_graph(
        [node], "g", graph_inputs, [helper.make_tensor_value_info(o, 0, None) for o in outputs], initializers
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


_OUTPUTS = {"Split": 2, "TopK": 2}


@pytest.mark.parametrize("name, op_type, inputs, attrs, opset, weights", CASES, ids=[c[0] for c in CASES])
def test_matches_reference(name, op_type, inputs, attrs, opset, weights):
    model = _model(op_type, inputs, attrs, opset, weights, _OUTPUTS.get(op_type, 1))
    feeds = {i.name: inputs[i.name] for i in model.graph.input}
    expected = ReferenceEvaluator(model).run(None, feeds)
    converted = to_torch(model).eval()
    actual = converted(*(torch.from_numpy(a) for a in feeds.values()))
    actual = actual if isinstance(actual, tuple) else (actual,)
    assert len(actual) == len(expected)
    for got, want in zip(actual, expected):
        torch.testing.assert_close(got, torch.from_numpy(np.array(want)), atol=1e-5, rtol=1e-4, check_dtype=True)


# -- recurrent layers: gate order, directions and layouts against the reference --------------


def _rnn_model(op_type, direction, layout, hidden, with_states, opset=14):
    gates = {"LSTM": 4, "GRU": 3, "RNN": 1}[op_type]
    dirs = 2 if direction == "bidirectional" else 1
    seq, batch, size = 5, 2, 3
    x = f32(batch, seq, size) if layout else f32(seq, batch, size)
    arrays = {"W": f32(dirs, gates * hidden, size), "R": f32(dirs, gates * hidden, hidden), "B": f32(dirs, 2 * gates * hidden)}
    state_shape = (batch, dirs, hidden) if layout else (dirs, batch, hidden)
    states = {"h0": f32(*state_shape)} | ({"c0": f32(*state_shape)} if op_type == "LSTM" else {})
    inputs = ["x", "W", "R", "B", ""] + (list(states) if with_states else [])
    attrs = {"hidden_size": hidden, "direction": direction, "layout": layout}
    if op_type == "GRU":
        attrs["linear_before_reset"] = 1
    outputs = ["Y", "Y_h"] + (["Y_c"] if op_type == "LSTM" else [])
    node = helper.make_node(op_type, inputs, outputs, name="rnn", **attrs)
    runtime = {"x": x} | (states if with_states else {})
    graph = helper.make_graph(
        [node], "g", [helper.make_tensor_value_info(n, 1, a.shape) for n, a in runtime.items()],
        [helper.make_tensor_value_info(o, 1, None) for o in outputs],
        [numpy_helper.from_array(a, n) for n, a in arrays.items()],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)]), runtime


@pytest.mark.parametrize("op_type", ["LSTM", "GRU", "RNN"])
@pytest.mark.parametrize("direction, layout, with_states", [
    ("forward", 0, False), ("reverse", 0, True), ("bidirectional", 0, True), ("bidirectional", 1, True),
])
def test_recurrent_matches_reference(op_type, direction, layout, with_states):
    model, feeds = _rnn_model(op_type, direction, layout, 4, with_states)
    expected = ReferenceEvaluator(model).run(None, feeds)
    actual = to_torch(model)(*(torch.from_numpy(a) for a in feeds.values()))
    module = next(to_torch(model).children())
    assert type(module) is {"LSTM": torch.nn.LSTM, "GRU": torch.nn.GRU, "RNN": torch.nn.RNN}[op_type]
    for got, want in zip(actual, expected):
        torch.testing.assert_close(got, torch.from_numpy(np.array(want)), atol=1e-5, rtol=1e-4)


# -- semantics the reference evaluator does not implement -------------------------------------


def test_softmax_before_opset13_normalizes_the_flattened_tail():
    x = f32(2, 3, 4)
    model = _model("Softmax", {"x": x}, {"axis": 1}, 11, (), 1)
    expected = torch.softmax(torch.from_numpy(x).reshape(2, 12), 1).reshape(2, 3, 4)
    torch.testing.assert_close(to_torch(model)(torch.from_numpy(x)), expected)


def test_negative_pads_crop():
    x = f32(3, 5)
    model = _model("Pad", {"x": x, "p": i64(1, -1, 0, 2), "v": np.array(1.5, np.float32)}, {}, 17, ("v",), 1)
    expected = np.pad(x[:, 1:], ((1, 0), (0, 2)), constant_values=1.5)
    torch.testing.assert_close(to_torch(model)(torch.from_numpy(x)), torch.from_numpy(expected))
