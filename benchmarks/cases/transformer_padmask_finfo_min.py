"""Hand-written 2-layer Pre-LN causal LM on left-padded batches; blocked attention scores are
filled with torch.finfo(float32).min (what Hugging Face models do).

Varied factor: numerics of the mask value: a fully masked row becomes a finite, uniform
softmax instead of NaN.
Twin: transformer_padmask_neginf.
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
    return kit.HandwrittenTransformerLM(vocab=128, d_model=32, heads=4, layers=2,
                                        mask_value=torch.finfo(torch.float32).min)


def make_batch(step):
    return kit.left_padded_lm_batch(step, batch=16, seq_len=16, vocab=128)  # (tokens, pad_mask), targets


def example_inputs():
    return make_batch(0)[0]


def example_targets():
    return make_batch(0)[1]


def loss_fn(output, targets):
    return kit.lm_loss(output, targets)  # padded targets are -100: ignored


def configure_optimizers(model):
    return torch.optim.Adam(model.parameters(), lr=3e-3)
