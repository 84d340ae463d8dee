"""Digits classifier (2 hidden layers of 128, raw 0..16 pixels, Adam lr 0.03) whose loss takes
torch.log(torch.softmax(logits)).

Varied factor: numerics. Once logits grow confident, some probability underflows to 0 in
float32; log(0) = -inf and its backward gives 0 * inf = NaN gradients.
Twin: mlp_digits_log_softmax.
"""

import sys
from pathlib import Path

import torch
from torch import nn

try:  # truth.py puts benchmarks/ on sys.path
    import _casekit as kit
except ImportError:  # loaded as a plain file (e.g. by gradlint): the helper is one folder up
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import _casekit as kit


TRAIN_STEPS = 300


def build_model():
    return kit.mlp(64, 128, depth=2, out_dim=10, act=nn.ReLU)


def make_batch(step):
    return kit.digits_batch(step, batch=64, raw_pixels=True)


def example_inputs():
    return make_batch(0)[0]


def example_targets():
    return make_batch(0)[1]


def loss_fn(output, targets):
    return nn.functional.nll_loss(torch.log(torch.softmax(output, dim=-1)), targets)


def configure_optimizers(model):
    return torch.optim.Adam(model.parameters(), lr=0.03)
