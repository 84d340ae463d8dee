"""Round trips torch -> ONNX -> OnnxModule: same outputs, same weight gradients, same layer types."""

from __future__ import annotations

import copy
import math

import onnx
import pytest
import torch
from onnx import TensorProto, helper
from torch import nn

from gradlint.errors import LoadError
from gradlint.onnx.convert import OnnxModule, OnnxScope, UnsupportedOpError, example_inputs, to_torch
from gradlint.onnx.load import load_onnx

TRAINING = torch.onnx.TrainingMode.TRAINING


def randomize(model: nn.Module, seed: int = 0) -> nn.Module:
    """Distinct random values in every parameter and running statistic.

    Gradients are compared by matching converted parameters to the source's by value, which
    needs every tensor to be unique; default inits are not (LayerNorm ones, the copied layers
    of nn.TransformerEncoder).
    """
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in model.parameters():
            param.copy_(torch.randn(param.shape, generator=generator) * 0.3)
        for name, buffer in model.named_buffers():
            if name.endswith("running_var"):
                buffer.copy_(torch.rand(buffer.shape, generator=generator) + 0.5)
            elif name.endswith("running_mean"):
                buffer.copy_(torch.randn(buffer.shape, generator=generator) * 0.1)
    return model


# -- the models -------------------------------------------------------------------------------


class Residual(nn.Module):
    """A ResNet basic block: conv-BN-ReLU-conv-BN plus a (projected) shortcut."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        y = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(y)) + self.shortcut(x))


class ResNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 3, padding=1)
        self.blocks = nn.Sequential(Residual(4, 4, 1), Residual(4, 8, 2))
        self.head = nn.Linear(8, 3)

    def forward(self, x):
        return self.head(torch.flatten(nn.functional.adaptive_avg_pool2d(self.blocks(self.stem(x)), 1), 1))


class Recurrent(nn.Module):
    def __init__(self, cls, **kwargs):
        super().__init__()
        self.rnn = cls(4, 6, **kwargs)
        self.head = nn.Linear(12 if kwargs.get("bidirectional") else 6, 2)

    def forward(self, x):
        return self.head(self.rnn(x)[0])


class Attention(nn.Module):
    """Hand-written causal single-head attention with a residual."""

    def __init__(self, dim: int = 8):
        super().__init__()
        self.q, self.k, self.v = nn.Linear(dim, dim), nn.Linear(dim, dim), nn.Linear(dim, dim)

    def forward(self, x):
        scores = self.q(x) @ self.k(x).transpose(-1, -2) / math.sqrt(x.shape[-1])
        causal = torch.triu(torch.ones(x.shape[1], x.shape[1], dtype=torch.bool), 1)
        scores = scores.masked_fill(causal, float("-inf"))
        return x + torch.softmax(scores, -1) @ self.v(x)


class LanguageModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(11, 8)
        self.mlp = nn.Sequential(nn.Linear(8, 16), nn.GELU(approximate="tanh"), nn.Linear(16, 8))
        self.out = nn.Linear(8, 11)

    def forward(self, ids):
        h = self.embed(ids)
        return torch.log_softmax(self.out(h + self.mlp(h)), -1)


def _transformer(norm_first: bool) -> nn.Module:
    layer = nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, batch_first=True, norm_first=norm_first)
    # A standalone TransformerEncoderLayer fails to trace in torch 2.13 (is_causal becomes a
    # tensor); wrapped in nn.TransformerEncoder it exports.
    return nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)


def _activations() -> nn.Module:
    return nn.Sequential(
        nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 8), nn.Tanh(), nn.Linear(8, 8), nn.GELU(),
        nn.Linear(8, 8), nn.Sigmoid(), nn.Linear(8, 8), nn.LeakyReLU(0.2), nn.Linear(8, 8), nn.ELU(),
        nn.Linear(8, 8), nn.Softplus(), nn.Linear(8, 8), nn.SELU(), nn.Linear(8, 2),
    )


def _cnn() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(4, 4, 3, stride=2, padding=1, groups=2, dilation=1), nn.ReLU(), nn.AvgPool2d(2),
        nn.Flatten(), nn.Linear(4, 2),
    )


def _conv1d_3d() -> nn.Module:
    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.c1 = nn.Sequential(nn.Conv1d(2, 4, 3, padding=2, dilation=2), nn.BatchNorm1d(4), nn.Tanh())
            self.c3 = nn.Conv3d(1, 2, (1, 2, 2))

        def forward(self, x):
            y = self.c1(x)  # [N, 4, L]
            return self.c3(y.reshape(y.shape[0], 1, 2, 2, -1)).sum((2, 3))

    return Model()


# name -> (build, inputs, export kwargs, modes to compare, {module type: count in the conversion})
CASES = {
    "mlp_activations": (
        _activations, (torch.randn(3, 4),), {}, ("eval",),
        {nn.Linear: 9, nn.ReLU: 1, nn.Tanh: 1, nn.GELU: 1, nn.Sigmoid: 1, nn.LeakyReLU: 1, nn.ELU: 1,
         nn.Softplus: 1, nn.SELU: 1},
    ),
    "mlp_3d_layernorm": (
        lambda: nn.Sequential(nn.Linear(4, 8), nn.LayerNorm(8), nn.Tanh(), nn.Linear(8, 3)),
        (torch.randn(2, 5, 4),), {}, ("eval",), {nn.Linear: 2, nn.LayerNorm: 1, nn.Tanh: 1},
    ),
    "cnn_batchnorm": (
        _cnn, (torch.randn(2, 3, 12, 12),), {"training": TRAINING}, ("train", "eval"),
        {nn.Conv2d: 2, nn.BatchNorm2d: 1, nn.ReLU: 2, nn.Linear: 1},
    ),
    "conv1d_conv3d": (
        _conv1d_3d, (torch.randn(2, 2, 8),), {"training": TRAINING}, ("train", "eval"),
        {nn.Conv1d: 1, nn.BatchNorm1d: 1, nn.Conv3d: 1, nn.Tanh: 1},
    ),
    "resnet": (
        ResNet, (torch.randn(2, 3, 8, 8),), {"training": TRAINING}, ("train", "eval"),
        {nn.Conv2d: 6, nn.BatchNorm2d: 5, nn.Linear: 1},
    ),
    "lstm_batch_first": (
        lambda: Recurrent(nn.LSTM, batch_first=True), (torch.randn(2, 5, 4),), {}, ("eval",),
        {nn.LSTM: 1, nn.Linear: 1},
    ),
    "gru_bidirectional_2_layers": (
        lambda: Recurrent(nn.GRU, num_layers=2, bidirectional=True), (torch.randn(5, 2, 4),),
        {"dynamic_batch": False}, ("eval",), {nn.GRU: 2, nn.Linear: 1},
    ),
    "rnn_relu_batch_first": (
        lambda: Recurrent(nn.RNN, batch_first=True, nonlinearity="relu"), (torch.randn(2, 5, 4),), {}, ("eval",),
        {nn.RNN: 1, nn.Linear: 1},
    ),
    "transformer_post_norm": (
        lambda: _transformer(False), (torch.randn(2, 5, 8),), {}, ("eval",),
        {nn.Linear: 4, nn.MultiheadAttention: 2, nn.LayerNorm: 4, nn.ReLU: 2},
    ),
    "transformer_pre_norm": (
        lambda: _transformer(True), (torch.randn(2, 5, 8),), {}, ("eval",),
        {nn.Linear: 4, nn.MultiheadAttention: 2, nn.LayerNorm: 4, nn.ReLU: 2},
    ),
    # Opset 14 (the oldest with attention) has no LayerNormalization: the exporter writes
    # ReduceMean/Sub/Pow/Sqrt/Div, with ReduceMean's axes still an attribute.
    "transformer_opset14": (
        lambda: _transformer(False), (torch.randn(2, 5, 8),), {"opset_version": 14}, ("eval",),
        {nn.Linear: 4, nn.MultiheadAttention: 2, nn.ReLU: 2},
    ),
    "attention_causal": (Attention, (torch.randn(2, 5, 8),), {}, ("eval",), {nn.Linear: 3}),
    # Before opset 13, Squeeze/Unsqueeze take axes as attributes.
    "lstm_opset11": (
        lambda: Recurrent(nn.LSTM, batch_first=True), (torch.randn(2, 5, 4),), {"opset_version": 11}, ("eval",),
        {nn.LSTM: 1, nn.Linear: 1},
    ),
    "language_model": (
        LanguageModel, (torch.randint(0, 11, (2, 5)),), {}, ("eval",),
        {nn.Embedding: 1, nn.Linear: 3, nn.GELU: 1},
    ),
}


@pytest.fixture(scope="module", params=list(CASES))
def case(request, export):
    """(source model, converted model, ONNX proto, inputs, modes, expected module counts)."""
    build, inputs, export_kwargs, modes, expected = CASES[request.param]
    torch.manual_seed(0)
    model = randomize(build())
    export_kwargs = dict(export_kwargs)
    dynamic = export_kwargs.pop("dynamic_batch", True)
    model.train("training" in export_kwargs)
    path = export(model, *inputs, name=request.param, dynamic_batch=dynamic, **export_kwargs)
    proto = load_onnx(path)
    return model, to_torch(proto), proto, inputs, modes, expected


def test_forward_and_gradients_match(case):
    model, converted, _, inputs, modes, _ = case
    for mode in modes:
        model.train(mode == "train")
        converted.train(mode == "train")
        expected, actual = _forward_backward(model, inputs), _forward_backward(converted, inputs)
        torch.testing.assert_close(actual, expected, atol=1e-5, rtol=1e-4)
        _assert_same_gradients(model, converted)


def test_layers_become_torch_modules(case):
    _, converted, proto, _, _, expected = case
    counts = {cls: sum(type(m) is cls for m in converted.modules()) for cls in expected}
    assert counts == expected
    # A Linear for every Gemm, but those inside a recovered nn.MultiheadAttention (its out_proj).
    attention = tuple(converted.node_names[p] + "/" for p, m in converted.named_modules()
                      if isinstance(m, nn.MultiheadAttention))
    gemms = sum(node.op_type == "Gemm" and not node.name.startswith(attention) for node in proto.graph.node)
    assert sum(t == "Gemm" for t in converted.op_types.values()) == gemms
    nodes = {node.name for node in proto.graph.node}
    for path, module in converted.named_modules(remove_duplicate=False):
        if not path:
            continue
        if isinstance(module, nn.ModuleList):  # never called, so never a name scope: "/layers.0/..."
            assert path not in converted.node_names and [name for name, _ in module.named_children()] == \
                [str(i) for i in range(len(module))]
            continue
        name = converted.node_names[path]  # a layer's node, or the name scope of an OnnxScope or attention
        if isinstance(module, (OnnxScope, nn.MultiheadAttention)):
            assert any(node.startswith(name + "/") for node in nodes), (path, name)
        else:
            assert name in nodes, (path, name)
        assert all(part.isidentifier() or part.isdigit() for part in path.split("."))


def test_example_inputs_run_the_model(case):
    _, converted, proto, inputs, _, _ = case
    generated = example_inputs(proto)
    assert [t.dtype for t in generated] == [t.dtype for t in inputs]
    converted.eval()(*generated)


def _forward_backward(model: nn.Module, inputs) -> torch.Tensor:
    model.zero_grad(set_to_none=True)
    out = model(*inputs)
    (out * torch.linspace(-1, 1, out.numel()).reshape(out.shape)).sum().backward()  # not a plain sum: softmax rows
    return out.detach()


def _assert_same_gradients(model: nn.Module, converted: OnnxModule) -> None:
    candidates = list(converted.named_parameters())
    for name, param in model.named_parameters():
        matches = [(n, p) for n, p in candidates if p.shape == param.shape and torch.equal(p.detach(), param.detach())]
        assert len(matches) == 1, f"{name}: {len(matches)} converted parameters hold its value"
        torch.testing.assert_close(matches[0][1].grad, param.grad, atol=1e-5, rtol=1e-4, msg=name)


# -- conversion details -----------------------------------------------------------------------


def test_deduplicated_initializers_stay_separate_parameters(export):
    """The exporter stores equal initializers once (two fresh LayerNorms) plus Identity copies."""
    model = nn.Sequential(nn.LayerNorm(4), nn.Linear(4, 4), nn.LayerNorm(4))
    path = export(model, torch.randn(2, 4))
    assert any(node.op_type == "Identity" for node in onnx.load(path).graph.node)
    converted = to_torch(load_onnx(path))
    sources = {source: name for name, source in converted.param_sources.items()}
    x = torch.randn(2, 4)
    _forward_backward(model, (x,))
    _forward_backward(converted, (x,))
    params = dict(converted.named_parameters())
    for name, param in model.named_parameters():
        torch.testing.assert_close(params[sources[name]].grad, param.grad, msg=name)
    assert len(params) == len(list(model.parameters()))


def test_tied_weights_stay_tied():
    """One initializer read by two Gemms (transB=1) is one Parameter shared by two Linears."""
    w = helper.make_tensor("w", TensorProto.FLOAT, [3, 3], torch.randn(9).tolist())
    graph = helper.make_graph(
        [helper.make_node("Gemm", ["x", "w"], ["h"], name="g1", transB=1),
         helper.make_node("Gemm", ["h", "w"], ["y"], name="g2", transB=1)],
        "tied", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 3])], [w],
    )
    converted = to_torch(helper.make_model(graph))
    assert converted.g1.weight is converted.g2.weight
    assert len(list(converted.parameters())) == 1


def test_deepcopy_runs_its_own_modules(export):
    model = randomize(nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2)))
    converted = to_torch(load_onnx(export(model, torch.randn(2, 4))))
    clone = copy.deepcopy(converted)
    with torch.no_grad():
        for param in clone.parameters():
            param.zero_()
    x = torch.randn(2, 4)
    assert torch.count_nonzero(clone(x)) == 0
    torch.testing.assert_close(converted(x), model(x))


def test_node_names_and_op_types(export):
    model = nn.Sequential(nn.Linear(4, 4), nn.ReLU())
    converted = to_torch(load_onnx(export(model, torch.randn(2, 4))))
    assert converted.node_names == {"0": "/0/Gemm", "1": "/1/Relu"}  # the Sequential's own paths
    assert converted.op_types == {"0": "Gemm", "1": "Relu"}
    assert converted.param_sources == {"0.weight": "0.weight", "0.bias": "0.bias"}


def test_failing_node_is_named():
    graph = helper.make_graph(
        [helper.make_node("Reshape", ["x", "shape"], ["y"], name="/head/Reshape")],
        "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [helper.make_tensor("shape", TensorProto.INT64, [2], [4, -1])],
    )
    converted = to_torch(helper.make_model(graph))
    with pytest.raises(LoadError, match=r"^ONNX node /head/Reshape \(Reshape\) failed: RuntimeError: shape"):
        converted(torch.randn(5, 3))


def test_current_node_names_the_running_step(export):
    converted = to_torch(load_onnx(export(nn.Sequential(nn.Linear(4, 4), nn.ReLU()), torch.randn(2, 4))))
    seen = []
    converted.get_submodule("0").register_forward_hook(lambda *_: seen.append(converted.current_node))
    converted(torch.randn(2, 4))
    assert seen == ["/0/Gemm"] and converted.current_node is None


def test_multiple_outputs_return_a_tuple():
    graph = helper.make_graph(
        [helper.make_node("Split", ["x"], ["a", "b"], axis=1, num_outputs=2)],
        "split", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 4])],
        [helper.make_tensor_value_info("a", TensorProto.FLOAT, None),
         helper.make_tensor_value_info("b", TensorProto.FLOAT, None)],
    )
    x = torch.randn(2, 4)
    a, b = to_torch(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]))(x)
    torch.testing.assert_close(torch.cat([a, b], 1), x)


# -- unsupported ops --------------------------------------------------------------------------


def _single_node_model(node: onnx.NodeProto, initializers=()) -> onnx.ModelProto:
    graph = helper.make_graph(
        [node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3, 4])],
        [helper.make_tensor_value_info(node.output[0], TensorProto.FLOAT, None)], list(initializers),
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_unsupported_op_names_op_and_node():
    model = _single_node_model(helper.make_node("Hardmax", ["x"], ["y"], name="/x/Hardmax_1"))
    with pytest.raises(UnsupportedOpError, match=r"^unsupported ONNX op\(s\): Hardmax \(node /x/Hardmax_1\)$") as info:
        to_torch(model)
    assert isinstance(info.value, LoadError)
    assert info.value.problems == {"Hardmax": ["/x/Hardmax_1"]}


def test_unsupported_ops_are_all_listed():
    nodes = [
        helper.make_node("Hardmax", ["x"], ["a"], name="h1"),
        helper.make_node("Hardmax", ["a"], ["b"], name="h2"),
        helper.make_node("Custom", ["b"], ["y"], name="c", domain="com.example"),
    ]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
    )
    with pytest.raises(UnsupportedOpError) as info:
        to_torch(helper.make_model(graph))
    assert str(info.value) == "unsupported ONNX op(s): Hardmax (nodes h1, h2), com.example.Custom (node c)"


def test_unsupported_setting_of_a_supported_op():
    hidden = 2
    weights = [
        helper.make_tensor(name, TensorProto.FLOAT, shape, [0.1] * math.prod(shape))
        for name, shape in (("W", [1, 4 * hidden, 4]), ("R", [1, 4 * hidden, hidden]), ("P", [1, 3 * hidden]))
    ]
    node = helper.make_node("LSTM", ["x", "W", "R", "", "", "", "", "P"], ["y"], name="lstm", hidden_size=hidden)
    with pytest.raises(UnsupportedOpError, match=r"LSTM with peephole weights \(node lstm\)"):
        to_torch(_single_node_model(node, weights))
