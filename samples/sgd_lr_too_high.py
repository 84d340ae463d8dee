"""A well-initialised MLP regressor trained with SGD at lr 5.0, 250x its stability limit: the loss is NaN.

Problem: nothing is wrong with the architecture or the init; the optimizer is. Gradient descent
is only stable for lr < 2 / lambda_max, lambda_max the largest eigenvalue of the loss Hessian;
above it each step overshoots along the sharpest direction by the factor |1 - lr * lambda_max| > 1,
and the loss and gradients grow geometrically until they overflow (LeCun et al. 1998, "Efficient
BackProp"; Cohen et al. 2021, "Gradient Descent on Neural Networks Typically Occurs at the Edge
of Stability").
Twin: sgd_lr_ok.py is the same file with lr = 0.01.

Measured (torch 2.13 CPU, method in samples/README.md): lambda_max at init ~101 (power iteration
on Hessian-vector products), so 2 / lambda_max ~ 0.02; with lr 5.0 on the example batch the MSE
goes 1.8 -> 4.3e6 -> 3.4e32 -> NaN (gradient norm inf at the 3rd step).
"""

import torch
import torch.nn as nn

IN_FEATURES, HIDDEN, BATCH = 16, 64, 16
LR = 5.0  # the bug: ~100x the lr this MSE problem tolerates


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
