"""Residual conv denoiser (stem, 4 blocks x + conv(relu(conv(x))), 8 channels, Kaiming), no
normalization, SGD lr 0.01.

Varied factor: normalization. Without BatchNorm every block doubles the stream's variance
and the loss curvature grows with it; SGD overshoots at the first step.
Twin: resnet_cnn_denoise_bn.
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
    return kit.ResidualConvDenoiser(blocks=4, channels=8, batchnorm=False)


def make_batch(step):
    return kit.digits_denoising_batch(step, batch=32)


def example_inputs():
    return make_batch(0)[0]


def example_targets():
    return make_batch(0)[1]


def loss_fn(output, targets):
    return nn.functional.mse_loss(output, targets)


def configure_optimizers(model):
    return torch.optim.SGD(model.parameters(), lr=0.01)
