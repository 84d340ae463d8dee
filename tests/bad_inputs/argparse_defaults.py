# expect: lints
# A training script's parser at module level, every option with a default: it sees only the
# model file in sys.argv (as under `python argparse_defaults.py`), never gradlint's options.
import argparse

parser = argparse.ArgumentParser()
parser.add_argument("--width", type=int, default=16)
args = parser.parse_args()

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

