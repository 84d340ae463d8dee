"""Residual MLP, 4 unnormalized blocks (width 64, Kaiming branches), SGD lr 0.01.

Varied factor: depth; at 4 blocks the 2^4 variance growth is already too much for lr 0.01.
Boundary twin: resnet_mlp_nonorm_3blocks. See also resnet_mlp_nonorm_8blocks.
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
    return kit.ResidualMLP(32, 64, blocks=4, out_dim=4)


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
