"""A 24-layer tanh MLP with xavier_normal_(gain=3.0): tanh saturates, gradients grow towards the input.

Problem: with weight std 3x the Glorot value the pre-activations are large, and about 30% of
the tanh outputs sit in the flat tails (|tanh| > 0.99). The net is in the "chaotic" phase of
mean-field theory: each layer multiplies the backward signal by chi = sigma_w^2 * E[tanh'(h)^2] > 1,
so the gradient grows geometrically from the output to the input while saturated units learn
slowly (Poole et al. 2016, "Exponential expressivity in deep neural networks through transient
chaos"; Schoenholz et al. 2017, "Deep Information Propagation").
Twin: deep_tanh_mlp_xavier.py uses gain 1.0 (Glorot & Bengio 2010).

Measured (torch 2.13 CPU, method in samples/README.md): activation-gradient ratio first/last
Linear 1.4e3 at init (gain 5/3: 10; gain 1: 0.25); 50 AdamW(lr=1e-3) steps on the example
batch take the loss from 5.7 only to 1.6 (twin: 2.3 -> 0.03).
"""

import torch
import torch.nn as nn

DEPTH, WIDTH, IN_FEATURES, CLASSES, BATCH = 24, 64, 32, 10, 16
GAIN = 3.0  # the bug: far above tanh's recommended gain of 5/3


class DeepTanhMLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.input = nn.Linear(IN_FEATURES, WIDTH)
        self.hidden = nn.ModuleList(nn.Linear(WIDTH, WIDTH) for _ in range(DEPTH - 2))
        self.output = nn.Linear(WIDTH, CLASSES)
        self.act = nn.Tanh()
        self._init_weights()

    def _init_weights(self):
        for layer in [self.input, *self.hidden, self.output]:
            nn.init.xavier_normal_(layer.weight, gain=GAIN)
            nn.init.zeros_(layer.bias)

    def forward(self, x):
        x = self.act(self.input(x))
        for layer in self.hidden:
            x = self.act(layer(x))
        return self.output(x)


def build_model():
    return DeepTanhMLP()


def example_inputs():
    g = torch.Generator().manual_seed(0)
    return (torch.randn(BATCH, IN_FEATURES, generator=g),)


def example_targets():
    g = torch.Generator().manual_seed(1)
    return torch.randint(0, CLASSES, (BATCH,), generator=g)
