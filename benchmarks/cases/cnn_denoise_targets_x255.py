"""Fully convolutional denoiser (4 ReLU convs, Kaiming) regressing 0..255 pixel targets from
0..1 inputs, SGD lr 0.03.

Varied factor: target scale. Unnormalized targets make MSE gradients ~255x larger (and the
curvature ~255^2 larger for the last layer) than the lr was chosen for.
Twin: cnn_denoise_targets_unit.
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
    return kit.denoiser(depth=4, channels=16)


def make_batch(step):
    (noisy,), clean = kit.digits_denoising_batch(step, batch=32)
    return (noisy,), 255 * clean


def example_inputs():
    return make_batch(0)[0]


def example_targets():
    return make_batch(0)[1]


def loss_fn(output, targets):
    return nn.functional.mse_loss(output, targets)


def configure_optimizers(model):
    return torch.optim.SGD(model.parameters(), lr=0.03)
