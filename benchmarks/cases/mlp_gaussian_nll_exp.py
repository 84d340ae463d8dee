"""Heteroscedastic regression (ReLU MLP 2x64 -> a mean and a raw variance per target) on teacher
regression, Gaussian negative log-likelihood with var = exp(raw), Adam lr 0.01.

Varied factor: numerics (variance link). exp of an unbounded output: as the fit improves the
variance head is pushed down and 1 / var grows exponentially, which can turn an unfitted
residual into a loss spike. Chosen as that risk; in training all seeds trained.
Twin: mlp_gaussian_nll_softplus.
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
    return kit.mlp(32, 64, depth=2, out_dim=8, act=nn.ReLU)  # 4 means, then 4 raw variances


def make_batch(step):
    return kit.teacher_regression(step, batch=32)


def example_inputs():
    return make_batch(0)[0]


def example_targets():
    return make_batch(0)[1]


def loss_fn(output, targets):
    mu, raw = output.chunk(2, dim=-1)
    var = torch.exp(raw)  # exp of an unbounded network output
    return (0.5 * (torch.log(var) + (targets - mu) ** 2 / var)).mean()


def configure_optimizers(model):
    return torch.optim.Adam(model.parameters(), lr=0.01)
