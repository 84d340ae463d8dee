# expect: lints GL902
# A layer whose `weight` raises when read: the rules that read it fail, and the report says so
# (GL902) instead of losing the model.
import torch
import torch.nn as nn


class Linear(nn.Module):
    def __init__(self, n_in, n_out):
        super().__init__()
        self.packed = nn.Parameter(torch.randn(n_out * n_in) / n_in ** 0.5)
        self.shape = (n_out, n_in)

    @property
    def weight(self):
        raise RuntimeError("the weight is packed: call unpack() first")

    def forward(self, x):
        return x @ self.packed.view(self.shape).T


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = Linear(16, 16)
        self.head = nn.Linear(16, 4)

    def forward(self, x):
        return self.head(torch.relu(self.fc(x)))


def build_model():
    return Net()
