"""3-layer ReLU CNN (16 channels, no BatchNorm, PyTorch default init) on 8x8 digits, Adam lr
0.01, whose loss takes torch.log(torch.softmax(logits)).

Varied factor: numerics. Once logits grow confident enough, some probability underflows to 0 in
float32 and log(0) = -inf. Chosen as the CNN twin of mlp_digits_log_of_softmax (which diverged);
here the logits never grew that far and all seeds trained.
Twin: cnn_digits_log_softmax.
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
    return kit.cnn(depth=3, channels=16)


def make_batch(step):
    return kit.digits_batch(step, batch=32, image=True)


def example_inputs():
    return make_batch(0)[0]


def example_targets():
    return make_batch(0)[1]


def loss_fn(output, targets):
    return nn.functional.nll_loss(torch.log(torch.softmax(output, dim=-1)), targets)


def configure_optimizers(model):
    return torch.optim.Adam(model.parameters(), lr=0.01)
