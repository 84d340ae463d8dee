"""LSTM language model (embedding 32, hidden 64, no clipping) on Markov-chain tokens,
Adagrad lr 0.01.

Varied factor: learning rate (Adagrad's default).
Written for the third held-out check (BENCHMARKS.md): its hyper-parameters were fixed before
any training, and before gradlint ran on it.
In training all 3 seeds trained; the calibration fitted on the 117 cases before it gave risk 0.03.
Twin: rnn_lstm_lm_adagrad_lr1.
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
    return kit.RecurrentLM(128, nn.LSTM(32, 64, batch_first=True))


def make_batch(step):
    return kit.lm_batch(step, batch=16, seq_len=16, vocab=128)


def example_inputs():
    return make_batch(0)[0]


def example_targets():
    return make_batch(0)[1]


def loss_fn(output, targets):
    return kit.lm_loss(output, targets)


def configure_optimizers(model):
    return torch.optim.Adagrad(model.parameters(), lr=0.01)
