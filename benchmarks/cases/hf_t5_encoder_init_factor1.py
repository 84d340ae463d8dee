"""Tiny T5 encoder (T5EncoderModel, 2 layers, d_model 64) + linear head on a token-majority
task, default initializer_factor 1, SGD lr 0.3.

Varied factor: init scale. T5 attention has no 1/sqrt(d) factor; its init shrinks the query
weights instead, so the default factor keeps attention logits small.
Twin: hf_t5_encoder_init_factor10.
"""

import sys
from pathlib import Path

import torch
from torch import nn
from transformers import T5Config, T5EncoderModel

try:  # truth.py puts benchmarks/ on sys.path
    import _casekit as kit
except ImportError:  # loaded as a plain file (e.g. by gradlint): the helper is one folder up
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import _casekit as kit


TRAIN_STEPS = 150


def build_model():
    config = T5Config(vocab_size=128, d_model=64, d_kv=16, d_ff=128, num_layers=2, num_heads=4,
                      initializer_factor=1.0)
    # T5EncoderModel returns BaseModelOutput (no head): classify from position 0.
    return kit.FirstTokenClassifier(T5EncoderModel(config), hidden=64, classes=2)


def make_batch(step):
    return kit.majority_batch(step, batch=32, seq_len=15, vocab=128)


def example_inputs():
    return make_batch(0)[0]


def example_targets():
    return make_batch(0)[1]


def loss_fn(output, targets):
    return nn.functional.cross_entropy(output, targets)


def configure_optimizers(model):
    return torch.optim.SGD(model.parameters(), lr=0.3)
