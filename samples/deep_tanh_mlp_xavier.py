"""The 24-layer tanh MLP of deep_tanh_mlp_large_gain.py with Xavier gain 1: no saturation.

What it shows: xavier_normal_(gain=1.0), std = sqrt(2 / (fan_in + fan_out)), keeps tanh in its
near-linear region where tanh' ~ 1, so each layer multiplies the backward signal by ~1: with
zero biases this is the critical line between the ordered and chaotic phases (Glorot & Bengio
2010, "Understanding the difficulty of training deep feedforward neural networks"; Schoenholz et
al. 2017, "Deep Information Propagation"). PyTorch's calculate_gain("tanh") = 5/3 also trains
here, with a first/last gradient ratio of 10.
Twin of deep_tanh_mlp_large_gain.py (identical except GAIN: 3.0 there).

Measured (torch 2.13 CPU, method in samples/README.md): activation-gradient ratio first/last
Linear 0.25 at init, no tanh output beyond +-0.99; 50 AdamW(lr=1e-3) steps on the example batch
take the loss from 2.3 to 0.03.
"""

import torch
import torch.nn as nn

DEPTH, WIDTH, IN_FEATURES, CLASSES, BATCH = 24, 64, 32, 10, 16
GAIN = 1.0  # Glorot's gain for tanh, which is ~linear around 0


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
