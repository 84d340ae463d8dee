"""Residual MLP, 3 unnormalized blocks (width 64, Kaiming branches), teacher regression, Adam lr 0.03.

Varied factor: learning rate, chosen as a possible divergence (the residual stream has no
normalization to absorb Adam's fixed-size first steps).
Written after GL604's 60-step change, with its hyper-parameters fixed before any training,
as a held-out check of the calibration fitted without it (BENCHMARKS.md).
In training 2 of 3 seeds diverged (loss above 10x its first value at step 1).
Twin: resnet_mlp_nonorm_adam_lr0p001.
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
    return kit.ResidualMLP(32, 64, blocks=3, out_dim=4)


def make_batch(step):
    return kit.teacher_regression(step, batch=32)


def example_inputs():
    return make_batch(0)[0]


def example_targets():
    return make_batch(0)[1]


def loss_fn(output, targets):
    return nn.functional.mse_loss(output, targets)


def configure_optimizers(model):
    return torch.optim.Adam(model.parameters(), lr=0.03)
