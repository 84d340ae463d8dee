"""Hand-written 4-layer causal LM (one 128-wide attention head, GELU MLPs, no LayerNorm), Adam lr 3e-3,
attention scaled by 1/sqrt(d_head).

Varied factor: attention scaling (the fixed twin).
Twin: transformer_wideattn_noscale. Related: transformer_attn_noscale (one 64-wide head, Adam lr 0.01).
"""

import sys
from pathlib import Path

import torch

try:  # truth.py puts benchmarks/ on sys.path
    import _casekit as kit
except ImportError:  # loaded as a plain file (e.g. by gradlint): the helper is one folder up
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import _casekit as kit


TRAIN_STEPS = 150


def build_model():
    # 1 head(s) of width 128: softmax(q k^T * attn_scale) v
    return kit.HandwrittenTransformerLM(vocab=128, d_model=128, heads=1, layers=4,
                                        attn_scale=128 ** -0.5, prenorm=False)


def make_batch(step):
    return kit.lm_batch(step, batch=16, seq_len=16, vocab=128)


def example_inputs():
    return make_batch(0)[0]


def example_targets():
    return make_batch(0)[1]


def loss_fn(output, targets):
    return kit.lm_loss(output, targets)


def configure_optimizers(model):
    return torch.optim.Adam(model.parameters(), lr=3e-3)
