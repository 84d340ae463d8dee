"""4-layer ReLU CNN (16 channels, PyTorch default init) on 8x8 digits, RMSprop lr 0.001.

Varied factor: learning rate, for an optimizer the corpus did not hold (RMSprop: no bias
correction, so its first steps are ~10x lr per entry).
Written after GL604's 60-step change, with its hyper-parameters fixed before any training,
as a held-out check of the calibration fitted without it (BENCHMARKS.md).
In training all 3 seeds trained.
Twin: cnn_rmsprop_lr0p03.
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
    return kit.cnn(depth=4, channels=16)


def make_batch(step):
    return kit.digits_batch(step, batch=32, image=True)


def example_inputs():
    return make_batch(0)[0]


def example_targets():
    return make_batch(0)[1]


def loss_fn(output, targets):
    return nn.functional.cross_entropy(output, targets)


def configure_optimizers(model):
    return torch.optim.RMSprop(model.parameters(), lr=0.001)
