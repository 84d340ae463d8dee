"""Poisson count regression (MLP 2x64) with rate = exp(output), Adam lr 0.001.

Varied factor: learning rate.
Written after GL604 began drawing its lookahead batches from the example batch's rows, with its
hyper-parameters fixed before any training, as a held-out check of the calibration fitted
without it (BENCHMARKS.md).
In training all 3 seeds trained (final loss -3.2 against 1.05 at step 0).
Twin: mlp_poisson_exp_adam_lr0p03.
"""

import sys
from pathlib import Path

import torch

try:  # truth.py puts benchmarks/ on sys.path
    import _casekit as kit
except ImportError:  # loaded as a plain file (e.g. by gradlint): the helper is one folder up
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import _casekit as kit


TRAIN_STEPS = 200


def build_model():
    return kit.mlp(32, 64, depth=2, out_dim=1)


def make_batch(step):
    return kit.poisson_counts_batch(step, batch=32)


def example_inputs():
    return make_batch(0)[0]


def example_targets():
    return make_batch(0)[1]


def loss_fn(output, targets):
    log_rate = output.squeeze(1)
    rate = torch.exp(log_rate)  # exp of an unbounded network output
    return (rate - targets * log_rate).mean()  # Poisson negative log-likelihood (no constant)


def configure_optimizers(model):
    return torch.optim.Adam(model.parameters(), lr=0.001)
