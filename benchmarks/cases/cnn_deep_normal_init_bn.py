"""5-layer ReLU CNN (16 channels) with BatchNorm after every conv, SGD lr 0.01; conv weights N(0, 1).

Varied factor: normalization. BatchNorm undoes the too-large N(0, 1) init layer by layer,
so only the classifier input keeps unit scale and training is stable.
Twin: cnn_deep_normal_init.
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


TRAIN_STEPS = 150


def build_model():
    return kit.cnn(depth=5, channels=16, batchnorm=True, init="normal")


def make_batch(step):
    return kit.digits_batch(step, batch=32, image=True)


def example_inputs():
    return make_batch(0)[0]


def example_targets():
    return make_batch(0)[1]


def loss_fn(output, targets):
    return nn.functional.cross_entropy(output, targets)


def configure_optimizers(model):
    return torch.optim.SGD(model.parameters(), lr=0.01)
