"""torch.nn modules the exporter unrolls come back: nn.MultiheadAttention, Transformer layers."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from gradlint.onnx.convert import to_torch
from gradlint.onnx.load import load_onnx


@pytest.mark.parametrize("heads, batch_first, norm_first", [(2, True, True), (4, False, False)])
def test_transformer_encoder_is_recovered(export, heads, batch_first, norm_first):
    torch.manual_seed(0)
    layer = nn.TransformerEncoderLayer(8, heads, 16, dropout=0.1, batch_first=batch_first, norm_first=norm_first)
    model = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
    x = torch.randn(3, 5, 8)
    converted = to_torch(load_onnx(export(model.train(), x, dynamic_batch=False,
                                          training=torch.onnx.TrainingMode.TRAINING)))
    assert type(converted).__name__ == "OnnxModule"
    assert type(converted.layers[0]).__name__ == "TransformerEncoderLayer"
    attention = converted.layers[1].self_attn
    assert isinstance(attention, nn.MultiheadAttention)
    assert (attention.num_heads, attention.batch_first, attention.dropout) == (heads, batch_first, 0.1)
    assert converted.layers[0].norm_first is norm_first
    assert converted.node_names["layers.1.self_attn"] == "/layers.1/self_attn"
    assert converted.param_sources["layers.1.self_attn.out_proj.weight"] == "layers.1.self_attn.out_proj.weight"
    assert [step.op_type for step in converted._steps].count("MultiheadAttention") == 2
    model.eval(), converted.eval()
    torch.testing.assert_close(converted(x), model(x), atol=1e-5, rtol=1e-4)


def test_encoder_class_and_attributes(export):
    layer = nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, batch_first=True)
    model = nn.Sequential(nn.Linear(4, 8), nn.TransformerEncoder(layer, 3, enable_nested_tensor=False))
    converted = to_torch(load_onnx(export(model.train(), torch.randn(2, 5, 4), dynamic_batch=False,
                                          training=torch.onnx.TrainingMode.TRAINING)))
    encoder = converted.get_submodule("1")
    assert type(encoder).__name__ == "TransformerEncoder"
    assert encoder.num_layers == 3 and encoder.norm is None and len(encoder.layers) == 3
