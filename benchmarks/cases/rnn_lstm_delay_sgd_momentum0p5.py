"""LSTM (64 units) on delayed-sum regression, sequences of 32, SGD lr 0.1 with momentum 0.5, no
clipping.

Varied factor: momentum.
Written after GL604 began drawing its lookahead batches from the example batch's rows, with its
hyper-parameters fixed before any training, as a held-out check of the calibration fitted
without it (BENCHMARKS.md).
In training all 3 seeds trained (final loss 1.02 against 1.25 at step 0).
Twin: rnn_lstm_delay_sgd_momentum0p99.
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
    return kit.SequenceRegressor(nn.LSTM(8, 64, batch_first=True), out_dim=4)


def make_batch(step):
    return kit.delay_regression(step, batch=16, seq_len=32)


def example_inputs():
    return make_batch(0)[0]


def example_targets():
    return make_batch(0)[1]


def loss_fn(output, targets):
    return nn.functional.mse_loss(output, targets)


def configure_optimizers(model):
    return torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.5)
