"""Residual MLP, 8 pre-LayerNorm blocks (width 64), Adam lr 0.03.

Varied factor: learning rate, below the edge for this model.
Boundary twin: resnet_mlp_prenorm_adam_lr0p1.
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
    return kit.ResidualMLP(32, 64, blocks=8, out_dim=4, prenorm=True)


def make_batch(step):
    return kit.teacher_regression(step, batch=32)


def example_inputs():
    return make_batch(0)[0]


def example_targets():
    return make_batch(0)[1]


def loss_fn(output, targets):
    return nn.functional.mse_loss(output, targets)


def configure_optimizers(model):
    return torch.optim.Adam(model.parameters(), lr=0.03)
