"""Deep ReLU MLP (8 hidden layers of 64), teacher regression, SGD lr 0.01; Kaiming-normal init
multiplied by a gain of 1.5.

Varied factor: init gain. 1.5x per layer compounds to 1.5^9 ~ 40x in the output and far more
in the gradient; the first SGD step explodes.
Twin: mlp_relu_deep_kaiming (gain 1).
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
    return kit.mlp(32, 64, depth=8, out_dim=4, act=nn.ReLU, init="kaiming", gain=1.5)


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
