"""GRU (64 units, 24 steps) on a delay-2 regression task, plain SGD lr 1, grad-norm clip 1.0.

Varied factor: gradient clipping.
Twin: rnn_gru_sgd_lr1_noclip.
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

gradient_clip_val = 1.0  # global grad-norm clipping


def build_model():
    return kit.SequenceRegressor(nn.GRU(8, 64, batch_first=True), out_dim=4)


def make_batch(step):
    return kit.delay_regression(step, batch=16, seq_len=24)


def example_inputs():
    return make_batch(0)[0]


def example_targets():
    return make_batch(0)[1]


def loss_fn(output, targets):
    return nn.functional.mse_loss(output, targets)


def configure_optimizers(model):
    return torch.optim.SGD(model.parameters(), lr=1.0)
