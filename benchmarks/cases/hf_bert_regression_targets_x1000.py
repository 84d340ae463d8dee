"""Tiny BERT (BertForSequenceClassification with num_labels=1, 2 layers, hidden 64, random init)
regressing a sequence statistic given in raw units x 1000; MSE, SGD lr 0.03.

Varied factor: target scale. The regression head's gradient is ~1000x the standardized one;
LayerNorm inside BERT does not help because the head sits after it.
Twin: hf_bert_regression_targets_standardized.
"""

import sys
from pathlib import Path

import torch
from torch import nn
from transformers import BertConfig, BertForSequenceClassification

try:  # truth.py puts benchmarks/ on sys.path
    import _casekit as kit
except ImportError:  # loaded as a plain file (e.g. by gradlint): the helper is one folder up
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import _casekit as kit


TRAIN_STEPS = 150


def build_model():
    config = BertConfig(vocab_size=128, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=128, max_position_embeddings=32, num_labels=1)
    return BertForSequenceClassification(config)  # num_labels=1: a regression head


def make_batch(step):
    return kit.low_token_fraction_batch(step, batch=32, seq_len=15, vocab=128, target_scale=1000.0)


def example_inputs():
    return make_batch(0)[0]


def example_targets():
    return make_batch(0)[1]


def loss_fn(output, targets):
    return nn.functional.mse_loss(output.logits, targets)  # logits: (B, 1)


def configure_optimizers(model):
    return torch.optim.SGD(model.parameters(), lr=0.03)
