"""A 16-block unnormalized residual MLP with full-weight He-init branches: the scale grows ~3x per block.

Problem: each block computes x + fc2(relu(fc1(x))) with both Linears He-initialised
(kaiming_normal_, std = sqrt(2 / fan_in)). The branch output then has ~2 Var(x), so
Var(x + f(x)) ~ 3 Var(x): after 16 blocks the variance has grown ~3^16 = 4e7 (scale ~6.6e3),
and the backward pass grows the same way. Skips alone do not make a net stable; they need
normalization or down-weighted branches (Zhang et al. 2019, "Fixup Initialization"; De & Smith
2020, "Batch Normalization Biases Residual Blocks Towards the Identity Function in Deep Networks").
Twin: resnet_skipinit.py multiplies every branch by a learnable scalar alpha initialised to 0
(SkipInit, De & Smith 2020; ReZero, Bachlechner et al. 2020), so each block starts as the identity.

Measured (torch 2.13 CPU, method in samples/README.md): logits' RMS 700 and activation-gradient
ratio first/last Linear 2.9e3 at init, loss 1.1e3; over 50 AdamW(lr=1e-3) steps on the example
batch the gradient norm peaks at 2.1e4 and the loss keeps jumping back up (0 -> 61 at step 46;
twin: ratio 0.6, loss 2.35 -> 0.009, gradient norm <= 3.7).
"""

import torch
import torch.nn as nn

BLOCKS, WIDTH, IN_FEATURES, CLASSES, BATCH = 16, 64, 32, 10, 16


class Block(nn.Module):
    def __init__(self, width):
        super().__init__()
        self.fc1 = nn.Linear(width, width)
        self.fc2 = nn.Linear(width, width)
        self.act = nn.ReLU()
        for fc in (self.fc1, self.fc2):
            nn.init.kaiming_normal_(fc.weight, nonlinearity="relu")
            nn.init.zeros_(fc.bias)

    def forward(self, x):
        return x + self.fc2(self.act(self.fc1(x)))  # branch added with weight 1: Var grows ~3x


class ResidualMLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.input = nn.Linear(IN_FEATURES, WIDTH)
        self.blocks = nn.Sequential(*[Block(WIDTH) for _ in range(BLOCKS)])
        self.output = nn.Linear(WIDTH, CLASSES)

    def forward(self, x):
        return self.output(self.blocks(self.input(x)))


def build_model():
    return ResidualMLP()


def example_inputs():
    g = torch.Generator().manual_seed(0)
    return (torch.randn(BATCH, IN_FEATURES, generator=g),)


def example_targets():
    g = torch.Generator().manual_seed(1)
    return torch.randint(0, CLASSES, (BATCH,), generator=g)
