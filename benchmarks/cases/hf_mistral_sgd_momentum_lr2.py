"""Tiny Mistral LM (MistralForCausalLM, 2 layers, hidden 64, random init) on Markov-chain
tokens, SGD lr 2 with momentum 0.9.

Varied factor: learning rate (effective step 20): momentum accumulates overshoots until the
loss blows up within ~10 steps.
Boundary twin: hf_mistral_sgd_momentum_lr1.
"""

import sys
from pathlib import Path

import torch
from transformers import MistralConfig, MistralForCausalLM

try:  # truth.py puts benchmarks/ on sys.path
    import _casekit as kit
except ImportError:  # loaded as a plain file (e.g. by gradlint): the helper is one folder up
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import _casekit as kit


TRAIN_STEPS = 150


def build_model():
    config = MistralConfig(vocab_size=128, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                           num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=32,
                           sliding_window=None, use_cache=False, bos_token_id=0, eos_token_id=0,
                           pad_token_id=0)
    return MistralForCausalLM(config)


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
    return torch.optim.SGD(model.parameters(), lr=2.0, momentum=0.9)
