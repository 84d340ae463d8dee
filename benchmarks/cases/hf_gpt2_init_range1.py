"""Tiny GPT-2 LM (2 layers, n_embd 64) built with initializer_range=1.0 instead of 0.02, SGD lr 1.

Varied factor: init scale. N(0, 1) weights make logits ~50x too large; the loss starts high
and the first SGD steps on those huge logits drive it far higher.
Twin: hf_gpt2_sgd_lr1.
"""

import sys
from pathlib import Path

import torch
from transformers import GPT2Config, GPT2LMHeadModel

try:  # truth.py puts benchmarks/ on sys.path
    import _casekit as kit
except ImportError:  # loaded as a plain file (e.g. by gradlint): the helper is one folder up
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import _casekit as kit


TRAIN_STEPS = 150


def build_model():
    config = GPT2Config(vocab_size=128, n_positions=32, n_embd=64, n_layer=2, n_head=4,
                        initializer_range=1.0, use_cache=False, bos_token_id=0, eos_token_id=0)
    return GPT2LMHeadModel(config)  # random init, N(0, initializer_range) weights


def make_batch(step):
    return kit.lm_batch(step, batch=16, seq_len=16, vocab=128)


def example_inputs():
    return make_batch(0)[0]


def example_targets():
    return make_batch(0)[1]


def loss_fn(output, targets):
    # Causal-LM heads return a ModelOutput; .logits is (B, T, vocab). Targets are the next tokens.
    return kit.lm_loss(output.logits, targets)


def configure_optimizers(model):
    return torch.optim.SGD(model.parameters(), lr=1.0)
