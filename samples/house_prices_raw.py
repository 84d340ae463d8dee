"""The MLP regressor of sgd_lr_ok.py (SGD lr 0.01) trained on house prices in dollars.

What it shows: regression targets far from the unit scale a freshly initialized output starts
at. Prices around $250,000 make the squared error start near 6e10 and its gradients ~2e5x those
of standardized targets, so lr 0.01, stable on standardized targets, is ~2e5x too large here
(LeCun et al. 1998, "Efficient BackProp": normalize the targets as well as the inputs).
Twin of house_prices_standardized.py (identical except that its loss_fn standardizes the targets).

Measured (torch 2.13 CPU, method in samples/README.md): the MSE starts at 6.1e10 with gradient
norm 3.3e6; the second step's loss is 4.8e23 with an infinite gradient norm, and NaN from the third.
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
    return nn.functional.mse_loss(output, targets)


def configure_optimizers(model):
    return torch.optim.SGD(model.parameters(), lr=0.01)
