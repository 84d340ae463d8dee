# expect: error: backward raised RuntimeError: no gradient for this op
import torch
import torch.nn as nn


class Opaque(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x * 2

    @staticmethod
    def backward(ctx, grad):
        raise RuntimeError("no gradient for this op")


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        return Opaque.apply(self.fc(x))


def build_model():
    return Net()
