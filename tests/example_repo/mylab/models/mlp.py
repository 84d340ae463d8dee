import torch
import torch.nn as nn

from ..layers import Block, Head


class Net(nn.Module):
    def __init__(self, width: int = 32, depth: int = 2):
        super().__init__()
        self.embed = nn.Linear(16, width)
        self.blocks = nn.Sequential(*(Block(width) for _ in range(depth)))
        self.head = Head(width, 4)

    def forward(self, x):
        return self.head(self.blocks(self.embed(x)))


def build_model():
    return Net()


def example_inputs():
    return (torch.randn(8, 16, generator=torch.Generator().manual_seed(0)),)
