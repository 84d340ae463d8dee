"""Small ReLU MLP regression with unnormalized targets (teacher outputs x 1000), SGD lr 0.05.

Varied factor: target scale. MSE gradients scale with the targets, so a learning rate
tuned for unit targets is ~1000x too large here.
Twin: mlp_targets_standardized.
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
    return kit.mlp(32, 64, depth=2, out_dim=4, act=nn.ReLU)


def make_batch(step):
    return kit.teacher_regression(step, batch=32, target_scale=1000.0)


def example_inputs():
    return make_batch(0)[0]


def example_targets():
    return make_batch(0)[1]


def loss_fn(output, targets):
    return nn.functional.mse_loss(output, targets)


def configure_optimizers(model):
    return torch.optim.SGD(model.parameters(), lr=0.05)
