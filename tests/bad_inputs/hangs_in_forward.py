# expect: error: timed out after 5 s during the probe's forward and backward pass (--timeout)
import torch
import torch.nn as nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        while True:
            pass


def build_model():
    return Net()
