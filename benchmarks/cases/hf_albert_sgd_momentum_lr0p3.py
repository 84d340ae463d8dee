"""Tiny ALBERT classifier (6 weight-shared layers, hidden 64, random init) on a token-majority
task, SGD lr 0.3 with momentum 0.9.

Varied factor: learning rate. The shared layer receives the summed gradient of all 6 uses,
so its effective step is several times larger than a plain 6-layer model's.
Twin: hf_albert_sgd_momentum_lr0p03.
"""

import sys
from pathlib import Path

import torch
from torch import nn
from transformers import AlbertConfig, AlbertForSequenceClassification

try:  # truth.py puts benchmarks/ on sys.path
    import _casekit as kit
except ImportError:  # loaded as a plain file (e.g. by gradlint): the helper is one folder up
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import _casekit as kit


TRAIN_STEPS = 150


def build_model():
    # ALBERT shares one layer's weights across all 6 layers: a deep stack with few parameters.
    config = AlbertConfig(vocab_size=128, embedding_size=32, hidden_size=64, num_hidden_layers=6,
                          num_attention_heads=4, intermediate_size=128, max_position_embeddings=32,
                          num_labels=2)
    return AlbertForSequenceClassification(config)


def make_batch(step):
    return kit.majority_batch(step, batch=32, seq_len=15, vocab=128)


def example_inputs():
    return make_batch(0)[0]


def example_targets():
    return make_batch(0)[1]


def loss_fn(output, targets):
    return nn.functional.cross_entropy(output.logits, targets)  # SequenceClassifierOutput.logits


def configure_optimizers(model):
    return torch.optim.SGD(model.parameters(), lr=0.3, momentum=0.9)
