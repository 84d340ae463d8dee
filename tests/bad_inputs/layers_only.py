# expect: skipped: its nn.Module classes (Block, Attention) all need constructor arguments; name a factory with file.py::NAME or build_model() to lint one
# A package's layers module: every class needs its sizes.
import torch.nn as nn


class Block(nn.Module):
    def __init__(self, width):
        super().__init__()
        self.fc = nn.Linear(width, width)

    def forward(self, x):
        return self.fc(x)


class Attention(nn.Module):
    def __init__(self, width, heads):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width)

    def forward(self, x):
        return self.qkv(x)
