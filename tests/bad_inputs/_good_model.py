"""The good model every bad input is linted beside: a healthy MLP whose first layer starts at 10x
its critical scale, so it has a finding (GL201) and a risk to compare against a run of it alone."""

import torch
import torch.nn as nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(32, 32)
        self.fc2 = nn.Linear(32, 4)
        nn.init.normal_(self.fc1.weight, std=1.0)

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(x)))


def build_model():
    return Net()


def example_inputs():
    return (torch.randn(8, 32, generator=torch.Generator().manual_seed(0)),)
