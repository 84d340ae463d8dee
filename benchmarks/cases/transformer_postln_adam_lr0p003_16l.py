"""16-layer Post-LN causal LM (nn.TransformerEncoderLayer, norm_first=False, d_model 32) on
Markov-chain tokens, Adam lr 3e-3 with no warmup.

Varied factor: depth: a deep Post-LN stack without warmup.
Written for the third held-out check (BENCHMARKS.md): its hyper-parameters were fixed before
any training, and before gradlint ran on it.
In training all 3 seeds stalled; the calibration fitted on the 117 cases before it gave risk 0.04.
Twin: transformer_postln_adam_lr0p003_2l.
"""

import sys
from pathlib import Path

import torch

try:  # truth.py puts benchmarks/ on sys.path
    import _casekit as kit
except ImportError:  # loaded as a plain file (e.g. by gradlint): the helper is one folder up
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import _casekit as kit


TRAIN_STEPS = 150


def build_model():
    return kit.TorchTransformerLM(vocab=128, d_model=32, heads=4, layers=16, norm_first=False)


def make_batch(step):
    return kit.lm_batch(step, batch=16, seq_len=16, vocab=128)


def example_inputs():
    return make_batch(0)[0]


def example_targets():
    return make_batch(0)[1]


def loss_fn(output, targets):
    return kit.lm_loss(output, targets)


def configure_optimizers(model):
    return torch.optim.Adam(model.parameters(), lr=3e-3)  # no warmup
