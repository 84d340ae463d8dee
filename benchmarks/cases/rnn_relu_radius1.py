"""ReLU RNN (64 units, 32 steps) on a delay-2 regression task; recurrent matrix scaled to
spectral radius 1; SGD lr 0.03.

Varied factor: recurrent spectral radius (1: the hidden state neither grows nor dies fast).
Twin: rnn_relu_radius2.
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
    rnn = nn.RNN(8, 64, batch_first=True, nonlinearity="relu")
    kit.set_spectral_radius_(rnn.weight_hh_l0, 1.0)
    return kit.SequenceRegressor(rnn, out_dim=4)


def make_batch(step):
    return kit.delay_regression(step, batch=16, seq_len=32)


def example_inputs():
    return make_batch(0)[0]


def example_targets():
    return make_batch(0)[1]


def loss_fn(output, targets):
    return nn.functional.mse_loss(output, targets)


def configure_optimizers(model):
    return torch.optim.SGD(model.parameters(), lr=0.03)
