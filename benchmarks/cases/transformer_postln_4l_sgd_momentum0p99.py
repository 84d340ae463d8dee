"""Post-LN Transformer LM (4 layers, d 32, 4 heads) on Markov-chain tokens, SGD lr 0.1 with momentum
0.99.

Varied factor: momentum.
Written after GL604 began drawing its lookahead batches from the example batch's rows, with its
hyper-parameters fixed before any training, as a held-out check of the calibration fitted
without it (BENCHMARKS.md).
In training all 3 seeds trained (final loss 3.1 against 5.0 at step 0); the resampled
lookahead's loss rises 5x (a GL604 warning), the risk stays low (0.04, held out).
Twin: transformer_postln_4l_sgd_momentum0p9.
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
    return kit.TorchTransformerLM(vocab=128, d_model=32, heads=4, layers=4, norm_first=False)


def make_batch(step):
    return kit.lm_batch(step, batch=16, seq_len=16, vocab=128)


def example_inputs():
    return make_batch(0)[0]


def example_targets():
    return make_batch(0)[1]


def loss_fn(output, targets):
    return kit.lm_loss(output, targets)


def configure_optimizers(model):
    return torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.99)
