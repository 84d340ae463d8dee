"""The MLP regressor of sgd_lr_too_high.py with SGD at lr 0.01, half its stability limit: stable.

What it shows: the learning rate fits the curvature. With lambda_max ~101 at init (largest
Hessian eigenvalue of the MSE loss on the example batch), plain gradient descent is stable for
lr < 2 / lambda_max ~ 0.02 (LeCun et al. 1998, "Efficient BackProp"; Cohen et al. 2021, "Gradient
Descent on Neural Networks Typically Occurs at the Edge of Stability"). lr 0.05 still converges
here but the loss first jumps 1.8 -> 22, right at the edge.
Twin of sgd_lr_too_high.py (identical except LR: 5.0 there).

Measured (torch 2.13 CPU, method in samples/README.md): 50 SGD steps on the example batch take
the MSE from 1.8 to 0.003, decreasing at every step, gradient norm never above its initial 12.6.
"""

import torch
import torch.nn as nn

IN_FEATURES, HIDDEN, BATCH = 16, 64, 16
LR = 0.01  # half of 2 / lambda_max ~ 0.02: stable


class MLPRegressor(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(IN_FEATURES, HIDDEN)
        self.fc2 = nn.Linear(HIDDEN, HIDDEN)
        self.fc3 = nn.Linear(HIDDEN, 1)
        self.act = nn.ReLU()
        self._init_weights()

    def _init_weights(self):
        for fc in (self.fc1, self.fc2, self.fc3):
            nn.init.kaiming_normal_(fc.weight, nonlinearity="relu")  # a healthy init
            nn.init.zeros_(fc.bias)

    def forward(self, x):
        return self.fc3(self.act(self.fc2(self.act(self.fc1(x)))))


def build_model():
    return MLPRegressor()


def example_inputs():
    g = torch.Generator().manual_seed(0)
    return (torch.randn(BATCH, IN_FEATURES, generator=g),)


def example_targets():
    # A smooth regression target in [-1, 1], shape (BATCH, 1) like the output.
    x = example_inputs()[0]
    return torch.sin(x[:, :1]) * torch.cos(x[:, 1:2])


def loss_fn(output, targets):
    return nn.functional.mse_loss(output, targets)


def configure_optimizers(model):
    return torch.optim.SGD(model.parameters(), lr=LR)
