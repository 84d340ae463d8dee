# expect: error: forward raised RuntimeError: shape mismatch on the (8, 4) batch inferred from the first layer fc (Linear): define example_inputs() or pass --input-shape
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
