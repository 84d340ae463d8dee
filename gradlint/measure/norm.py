"""Helpers shared by the normalization rules: torch's Transformer containers and how to rewrite them."""

from __future__ import annotations

from typing import Any


def enclosing(model: Any, path: str, class_names: tuple[str, ...]) -> str | None:
    """The path of the nearest module at or above `path` whose class is one of `class_names`."""
    candidate = path
    while True:
        if type(model.get_submodule(candidate)).__name__ in class_names:
            return candidate
        if not candidate:
            return None
        candidate = candidate.rpartition(".")[0]


def encoder_layer_call(layer: Any, norm_first: bool) -> str:
    """`nn.TransformerEncoderLayer(...)` rebuilding `layer` with the given norm placement."""
    attention = layer.self_attn
    return (f"nn.TransformerEncoderLayer({attention.embed_dim}, {attention.num_heads}, "
            f"dim_feedforward={layer.linear1.out_features}, dropout={layer.dropout.p!r}, "
            f"batch_first={attention.batch_first}, norm_first={norm_first})")


def encoder_call(encoder: Any, norm_first: bool) -> str:
    """`nn.TransformerEncoder(...)` rebuilding `encoder` with the given norm placement and a final LayerNorm."""
    layer = encoder.layers[0]
    width = layer.self_attn.embed_dim
    return (f"nn.TransformerEncoder({encoder_layer_call(layer, norm_first)}, num_layers={len(encoder.layers)}, "
            f"norm=nn.LayerNorm({width}))")
