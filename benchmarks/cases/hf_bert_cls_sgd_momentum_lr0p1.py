"""Tiny BERT classifier (BertForSequenceClassification, 2 layers, hidden 64, random init)
labelling token sequences by their majority half of the vocabulary; SGD lr 0.1, momentum 0.9.

Varied factor: learning rate.
Written for the third held-out check (BENCHMARKS.md): its hyper-parameters were fixed before
any training, and before gradlint ran on it.
In training all 3 seeds stalled; the calibration fitted on the 117 cases before it gave risk 0.04.
Twin: hf_bert_cls_sgd_momentum_lr1.
"""

import sys
from pathlib import Path

import torch
from transformers import BertConfig, BertForSequenceClassification

try:  # truth.py puts benchmarks/ on sys.path
    import _casekit as kit
except ImportError:  # loaded as a plain file (e.g. by gradlint): the helper is one folder up
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import _casekit as kit


TRAIN_STEPS = 150


def build_model():
    config = BertConfig(vocab_size=128, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=128, max_position_embeddings=32, num_labels=2)
    return BertForSequenceClassification(config)  # random init


def make_batch(step):
    return kit.majority_batch(step, batch=32, seq_len=15, vocab=128)


def example_inputs():
    return make_batch(0)[0]


def example_targets():
    return make_batch(0)[1]


def loss_fn(output, targets):
    return torch.nn.functional.cross_entropy(output.logits, targets)


def configure_optimizers(model):
    return torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
