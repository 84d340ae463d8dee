# expect: lints
# A thread that never ends, started at import: the report still comes back, and the run ends.
import threading
import time

threading.Thread(target=time.sleep, args=(10**6,)).start()

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

