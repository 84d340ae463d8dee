import torch
import torch.nn as nn

from mylab.layers import Head


class Wide(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(64, 64)
        nn.init.normal_(self.fc.weight, std=1.0)  # 8x the critical scale of a 64-wide ReLU layer
        self.head = Head(64, 4)

    def forward(self, x):
        return self.head(torch.relu(self.fc(x)))


def build_model():
    return Wide()


def example_inputs():
    return (torch.randn(8, 64, generator=torch.Generator().manual_seed(0)),)
