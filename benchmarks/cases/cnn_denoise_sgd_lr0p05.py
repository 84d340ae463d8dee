"""Fully convolutional denoiser (4 ReLU convs of 16 channels, Kaiming) on noisy 8x8 digits, SGD lr 0.05.

Varied factor: learning rate, below the edge of stability.
Boundary twin: cnn_denoise_sgd_lr0p2.
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
    return (noisy,), clean


def example_inputs():
    return make_batch(0)[0]


def example_targets():
    return make_batch(0)[1]


def loss_fn(output, targets):
    return nn.functional.mse_loss(output, targets)


def configure_optimizers(model):
    return torch.optim.SGD(model.parameters(), lr=0.05)
