"""A 24-layer tanh MLP initialised with xavier_normal_(gain=3.0): tanh saturates and the net turns chaotic.

Problem: with weight std 3 / sqrt(fan_in) every pre-activation has std ~3, so most tanh units sit
in their flat tails (|tanh| > 0.99). The net is in the "chaotic" phase of mean-field theory:
each layer multiplies the backward signal by chi = gain^2 * E[tanh'(h)^2] > 1, so gradients grow
geometrically towards the input while the saturated units learn slowly (Poole et al. 2016,
"Exponential expressivity in deep neural networks through transient chaos"; Schoenholz et al.
2017, "Deep Information Propagation").
Twin: deep_tanh_mlp_xavier.py uses gain = nn.init.calculate_gain("tanh") = 5/3 MEASURE_TWIN.

Measured (see samples/README.md): MEASURE.
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
