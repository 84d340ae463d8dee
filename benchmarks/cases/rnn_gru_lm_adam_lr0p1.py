"""GRU language model (embedding 32, 64 units) on Markov-chain tokens, Adam lr 0.1, no clipping.

Varied factor: learning rate, chosen as a possible divergence.
Written after GL604's 60-step change, with its hyper-parameters fixed before any training,
as a held-out check of the calibration fitted without it (BENCHMARKS.md).
In training all 3 seeds trained (final loss 3.2 against 4.9 at step 0): no divergence.
Twin: rnn_gru_lm_adam_lr0p003.
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
    return kit.RecurrentLM(128, nn.GRU(32, 64, batch_first=True))


def make_batch(step):
    return kit.lm_batch(step, batch=16, seq_len=16, vocab=128)


def example_inputs():
    return make_batch(0)[0]


def example_targets():
    return make_batch(0)[1]


def loss_fn(output, targets):
    return kit.lm_loss(output, targets)


def configure_optimizers(model):
    return torch.optim.Adam(model.parameters(), lr=0.1)
