"""A 20-layer ReLU MLP initialised with N(0, 1) weights: activations and gradients explode.

Problem: nn.init.normal_(std=1.0) gives each weight variance 1 instead of 2 / fan_in. With
fan_in = 64 every Linear+ReLU multiplies the activation scale by sqrt(64 / 2) ~ 5.7, so after
20 layers the logits are ~1e15, and the backward pass multiplies the gradient by the same factor
on its way down to the first layer.
Twin: deep_mlp_kaiming.py uses kaiming_normal_(nonlinearity="relu"), std = sqrt(2 / fan_in),
which keeps the scale constant (He et al. 2015, "Delving Deep into Rectifiers").

Measured (torch 2.13 CPU, method in samples/README.md): at init the logits' RMS is 9.0e14 and
the activation-gradient ratio first/last Linear is 2.4e14; the loss is 1.5e15 and after 50
AdamW(lr=1e-3) steps on the example batch still 1.1e13 (twin: ratio 1.2, loss 3.1 -> 3e-5).
"""

import torch
import torch.nn as nn

DEPTH, WIDTH, IN_FEATURES, CLASSES, BATCH = 20, 64, 32, 10, 16


class DeepMLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.input = nn.Linear(IN_FEATURES, WIDTH)
        self.hidden = nn.ModuleList(nn.Linear(WIDTH, WIDTH) for _ in range(DEPTH - 2))
        self.output = nn.Linear(WIDTH, CLASSES)
        self.act = nn.ReLU()
        self._init_weights()

    def _init_weights(self):
        for layer in [self.input, *self.hidden, self.output]:
            # The bug: std=1.0 ignores fan_in; a stable ReLU init needs std = sqrt(2 / fan_in) ~ 0.18.
            nn.init.normal_(layer.weight, mean=0.0, std=1.0)
            nn.init.zeros_(layer.bias)

    def forward(self, x):
        x = self.act(self.input(x))
        for layer in self.hidden:
            x = self.act(layer(x))
        return self.output(x)


def build_model():
    return DeepMLP()


def example_inputs():
    g = torch.Generator().manual_seed(0)
    return (torch.randn(BATCH, IN_FEATURES, generator=g),)


def example_targets():
    g = torch.Generator().manual_seed(1)
    return torch.randint(0, CLASSES, (BATCH,), generator=g)
