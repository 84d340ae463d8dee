# expect: error: worker crashed: SIGSEGV during the probe's forward and backward pass
# Recursion through a C function (functools.reduce) with the recursion limit lifted: the C stack
# overflows and the interpreter segfaults.
import functools
import sys

import torch
import torch.nn as nn

sys.setrecursionlimit(10**6)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        return functools.reduce(lambda _, __: self.forward(x), [0], None)


def build_model():
    return Net()
