"""3-layer ReLU CNN (16 channels, no BatchNorm, PyTorch default init) on 8x8 digits, SGD lr 0.05
with momentum 0.99.

Varied factor: momentum. The effective step lr / (1 - beta) = 5 is 10x the 0.9 twin's. Chosen
as a possible heavy-momentum blow-up (as in mlp_relu_sgd_momentum0p99); in training it stalled
near the initial loss instead (benchmarks/truth.json).
Twin: cnn_sgd_momentum0p9.
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
    return kit.cnn(depth=3, channels=16)


def make_batch(step):
    return kit.digits_batch(step, batch=32, image=True)


def example_inputs():
    return make_batch(0)[0]


def example_targets():
    return make_batch(0)[1]


def loss_fn(output, targets):
    return nn.functional.cross_entropy(output, targets)


def configure_optimizers(model):
    return torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.99)
