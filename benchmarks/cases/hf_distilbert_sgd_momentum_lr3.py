"""Tiny DistilBERT classifier (2 layers, dim 64, random init) on a token-majority task,
SGD lr 3 with momentum 0.9.

Varied factor: learning rate: the classifier and embedding steps overshoot within a few steps.
Twin: hf_distilbert_sgd_momentum_lr0p3.
"""

import sys
from pathlib import Path

import torch
from torch import nn
from transformers import DistilBertConfig, DistilBertForSequenceClassification

try:  # truth.py puts benchmarks/ on sys.path
    import _casekit as kit
except ImportError:  # loaded as a plain file (e.g. by gradlint): the helper is one folder up
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import _casekit as kit


TRAIN_STEPS = 150


def build_model():
    config = DistilBertConfig(vocab_size=128, dim=64, n_layers=2, n_heads=4, hidden_dim=128,
                              max_position_embeddings=32, num_labels=2)
    return DistilBertForSequenceClassification(config)


def make_batch(step):
    return kit.majority_batch(step, batch=32, seq_len=15, vocab=128)


def example_inputs():
    return make_batch(0)[0]


def example_targets():
    return make_batch(0)[1]


def loss_fn(output, targets):
    return nn.functional.cross_entropy(output.logits, targets)  # SequenceClassifierOutput.logits


def configure_optimizers(model):
    return torch.optim.SGD(model.parameters(), lr=3.0, momentum=0.9)
