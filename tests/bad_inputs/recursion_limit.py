# expect: error: forward raised RecursionError: maximum recursion depth exceeded
import torch
import torch.nn as nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 2)

    def forward(self, x, depth=0):
        return self.forward(x, depth + 1)


def build_model():
    return Net()
