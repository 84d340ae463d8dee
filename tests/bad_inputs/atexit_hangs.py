# expect: lints
# An exit handler that would print and then wait forever: the worker ends without running it.
import atexit
import time


@atexit.register
def goodbye():
    print("goodbye")
    time.sleep(10**6)

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

