# expect: error: forward raised RuntimeError: shape mismatch
import torch
import torch.nn as nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        raise RuntimeError("shape mismatch")


def build_model():
    return Net()
