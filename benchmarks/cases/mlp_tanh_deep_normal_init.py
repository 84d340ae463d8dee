"""Deep tanh MLP (20 hidden layers of 64), teacher regression, SGD lr 0.01; weights N(0, 1).

Varied factor: init. N(0, 1) ignores fan-in (std 1 instead of ~1/8), which puts the tanh
stack deep in the chaotic phase: backpropagated gradients grow ~2x per layer.
Twin: mlp_tanh_deep_xavier.
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


TRAIN_STEPS = 200


def build_model():
    return kit.mlp(32, 64, depth=20, out_dim=4, act=nn.Tanh, init="normal")


def make_batch(step):
    return kit.teacher_regression(step, batch=32)


def example_inputs():
    return make_batch(0)[0]


def example_targets():
    return make_batch(0)[1]


def loss_fn(output, targets):
    return nn.functional.mse_loss(output, targets)


def configure_optimizers(model):
    return torch.optim.SGD(model.parameters(), lr=0.01)
