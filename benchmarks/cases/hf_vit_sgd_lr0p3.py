"""Tiny ViT (ViTForImageClassification, 2x2 patches of 8x8 digits, 2 layers, hidden 64, random
init), plain SGD lr 0.3.

Varied factor: learning rate (stable; plain SGD may barely move a ViT in 150 steps).
Twin: hf_vit_sgd_lr1.
"""

import sys
from pathlib import Path

import torch
from torch import nn
from transformers import ViTConfig, ViTForImageClassification

try:  # truth.py puts benchmarks/ on sys.path
    import _casekit as kit
except ImportError:  # loaded as a plain file (e.g. by gradlint): the helper is one folder up
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import _casekit as kit


TRAIN_STEPS = 150


def build_model():
    config = ViTConfig(image_size=8, patch_size=2, num_channels=1, hidden_size=64, num_hidden_layers=2,
                       num_attention_heads=4, intermediate_size=128, num_labels=10)
    return ViTForImageClassification(config)  # forward(pixel_values) -> ImageClassifierOutput


def make_batch(step):
    return kit.digits_batch(step, batch=32, image=True)


def example_inputs():
    return make_batch(0)[0]


def example_targets():
    return make_batch(0)[1]


def loss_fn(output, targets):
    return nn.functional.cross_entropy(output.logits, targets)  # SequenceClassifierOutput.logits


def configure_optimizers(model):
    return torch.optim.SGD(model.parameters(), lr=0.3)
