"""Tiny GPT-2 LM (transformers GPT2LMHeadModel, 2 layers, n_embd 64, random init) on
Markov-chain tokens, AdamW lr 3e-4, no warmup.

Varied factor: learning rate (a usual GPT-2 value).
Written for the third held-out check (BENCHMARKS.md): its hyper-parameters were fixed before
any training, and before gradlint ran on it.
In training all 3 seeds trained; the calibration fitted on the 117 cases before it gave risk 0.02.
Twin: hf_gpt2_adamw_lr0p03.
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
                        initializer_range=0.02, use_cache=False, bos_token_id=0, eos_token_id=0)
    return GPT2LMHeadModel(config)  # random init


def make_batch(step):
    return kit.lm_batch(step, batch=16, seq_len=16, vocab=128)


def example_inputs():
    return make_batch(0)[0]


def example_targets():
    return make_batch(0)[1]


def loss_fn(output, targets):
    return kit.lm_loss(output.logits, targets)


def configure_optimizers(model):
    return torch.optim.AdamW(model.parameters(), lr=3e-4)
