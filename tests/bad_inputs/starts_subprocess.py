# expect: lints
# A helper process started at import: it is killed with the worker, not left behind.
import subprocess
import sys

helper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(10**6)  # gradlint-bad-input-helper"])

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

