# expect: error: the model's code raised KeyboardInterrupt during the probe's forward and backward pass
import torch
import torch.nn as nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        raise KeyboardInterrupt


def build_model():
    return Net()
