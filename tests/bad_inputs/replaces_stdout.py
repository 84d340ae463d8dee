# expect: lints
# Replacing sys.stdout (a logging setup, a tqdm redirect) must not make the report vanish.
import io
import sys

sys.stdout = io.StringIO()
sys.stderr = io.StringIO()

import torch
import torch.nn as nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(16, 16)
        self.fc2 = nn.Linear(16, 4)

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(x)))


def build_model():
    return Net()

