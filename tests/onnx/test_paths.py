"""The converted model keeps the source model's module paths, recovered from the exporter's names."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from gradlint.onnx.convert import OnnxScope, to_torch
from gradlint.onnx.load import load_onnx
from gradlint.onnx.paths import scope_components, scope_path, scope_prefixes, source_path


@pytest.mark.parametrize("name, path", [
    ("/blocks/blocks.0/conv1/Conv", "blocks.0.conv1"),  # a Sequential's children: "blocks" then "blocks.0"
    ("/blocks/blocks.0/seq/seq.1/seq.1.0/Gemm", "blocks.0.seq.1.0"),  # nested Sequentials
    ("/encoder/layers.0/self_attn/MatMul", "encoder.layers.0.self_attn"),  # a ModuleList is never a scope
    ("/lst.0/ml.0/Gemm", "lst.0.ml.0"),
    ("/Add", ""),
    ("sequential/dense/MatMul", "sequential.dense"),  # another exporter's scopes
    ("/a-b/3x/Relu", "a_b.n_3x"),  # made into module names
])
def test_scope_path(name, path):
    assert scope_path(scope_components(name)) == path


def test_names_without_scope():
    assert scope_components("Gemm_3") is None
    assert scope_prefixes("/blocks/blocks.0/Add") == [("blocks", "/blocks"), ("blocks.0", "/blocks/blocks.0")]


@pytest.mark.parametrize("source, param, path", [
    ("blocks.0.conv1.weight", "weight", "blocks.0.conv1"),
    ("encoder.layers.0.self_attn.in_proj_weight", "weight", "encoder.layers.0.self_attn.in_proj"),
    ("lstm.weight_ih_l0", "weight_ih_l0", "lstm"),
    ("onnx::MatMul_12", "weight", None),
    ("w", "weight", None),
])
def test_source_path(source, param, path):
    assert source_path(source, param) == path


class Inner(nn.Module):
    def __init__(self):
        super().__init__()
        self.seq = nn.Sequential(nn.Linear(4, 4), nn.Sequential(nn.Linear(4, 4), nn.ReLU()))
        self.ml = nn.ModuleList([nn.Linear(4, 4)])
        self.act = nn.Tanh()

    def forward(self, x):
        x = self.act(self.seq(x))
        return self.act(self.ml[0](x)) + x  # `act` called twice; a residual add in this forward


class Outer(nn.Module):
    def __init__(self):
        super().__init__()
        self.blocks = nn.Sequential(Inner(), Inner())
        self.layers = nn.ModuleList([Inner()])
        self.heads = nn.ModuleDict({"main": nn.Linear(4, 2)})

    def forward(self, x):
        return self.heads["main"](self.layers[0](self.blocks(x)))


def _weighted_and_activation_paths(model: nn.Module) -> dict[str, type]:
    return {path: type(m) for path, m in model.named_modules()
            if isinstance(m, (nn.Linear, nn.Tanh, nn.ReLU))}


def test_layers_sit_at_the_source_model_paths(export):
    model = Outer()
    converted = to_torch(load_onnx(export(model, torch.randn(2, 4))))
    assert _weighted_and_activation_paths(converted) == _weighted_and_activation_paths(model)
    # The scopes that ran ops are OnnxScopes (the residual add of blocks.0 runs in blocks.0);
    # `layers`, a ModuleList the exporter never scoped, is one here too.
    assert isinstance(converted.get_submodule("blocks.0"), OnnxScope)
    assert isinstance(converted.layers, nn.ModuleList) and len(converted.layers) == 1
    assert converted.node_names["blocks.0"] == "/blocks/blocks.0"
    assert converted.node_names["heads.main"] == "/main/Gemm"  # the ModuleDict key alone is its scope
    steps = [step for step in converted._steps if step.op_type == "Add"]
    assert [step.scope for step in steps] == ["blocks.0", "blocks.1", "layers.0"]


def test_a_module_called_twice_is_one_module(export):
    converted = to_torch(load_onnx(export(Inner(), torch.randn(2, 4))))
    tanh_steps = [step for step in converted._steps if step.op_type == "Tanh"]
    assert [step.module for step in tanh_steps] == ["act", "act"]  # "/act/Tanh", then "/act_1/Tanh"
    assert sum(isinstance(m, nn.Tanh) for m in converted.modules()) == 1


def test_unfolded_linear_weight_transpose_is_absorbed(export):
    """Without constant folding, nn.Linear on a 3-D input exports as MatMul(x, Transpose(W)) + Add:
    the converted Linear holds W itself (the same Parameter as the initializer)."""
    model = nn.Sequential(nn.Linear(4, 3), nn.ReLU())
    x = torch.randn(2, 5, 4)
    path = export(model, x, do_constant_folding=False, training=torch.onnx.TrainingMode.TRAINING)
    converted = to_torch(load_onnx(path))
    assert not any(step.op_type == "Transpose" for step in converted._steps)
    assert isinstance(converted.get_submodule("0"), nn.Linear)
    assert converted.op_types["0"] == "MatMul+Add"
    assert converted.param_sources["0.weight"] == "0.weight"
    torch.testing.assert_close(converted(x), model(x))
