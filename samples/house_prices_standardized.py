"""The house-price regressor of house_prices_raw.py, trained on standardized prices: stable.

What it shows: the fix for targets far from unit scale. The loss compares the output with
(price - mean) / std, using the training set's mean and spread (constants here), so the squared
error starts near 1 and lr 0.01 (the stable lr of sgd_lr_ok.py) fits; predictions are
PRICE_STD * output + PRICE_MEAN dollars.
Twin of house_prices_raw.py (identical except for this loss_fn).

Measured (torch 2.13 CPU, method in samples/README.md): 50 SGD steps on the example batch take
the MSE from 1.78 to 0.0031, gradient norm at most 12.6.
"""

import torch
import torch.nn as nn

IN_FEATURES, HIDDEN, BATCH = 16, 64, 16
PRICE_MEAN, PRICE_STD = 250_000.0, 60_000.0  # dollars: the training set's mean and spread


class MLPRegressor(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(IN_FEATURES, HIDDEN)
        self.fc2 = nn.Linear(HIDDEN, HIDDEN)
        self.fc3 = nn.Linear(HIDDEN, 1)
        self.act = nn.ReLU()
        for fc in (self.fc1, self.fc2, self.fc3):
            nn.init.kaiming_normal_(fc.weight, nonlinearity="relu")
            nn.init.zeros_(fc.bias)

    def forward(self, x):
        return self.fc3(self.act(self.fc2(self.act(self.fc1(x)))))


def build_model():
    return MLPRegressor()


def example_inputs():
    g = torch.Generator().manual_seed(0)
    return (torch.randn(BATCH, IN_FEATURES, generator=g),)


def example_targets():
    # Prices in dollars, shape (BATCH, 1) like the output.
    x = example_inputs()[0]
    return PRICE_MEAN + PRICE_STD * torch.sin(x[:, :1]) * torch.cos(x[:, 1:2])


def loss_fn(output, targets):
    return nn.functional.mse_loss(output, (targets - PRICE_MEAN) / PRICE_STD)


def configure_optimizers(model):
    return torch.optim.SGD(model.parameters(), lr=0.01)
