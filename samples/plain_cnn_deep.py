"""A plain 16-conv ReLU CNN without normalization or skips: the gradient vanishes towards the input.

Problem: PyTorch's default Conv2d init (kaiming_uniform_ with a=sqrt(5)) draws weights with
variance 1 / (3 * fan_in), a third of what ReLU needs (2 / fan_in). Each conv+ReLU scales the
activations by ~sqrt(1/6), and the backward pass shrinks the gradient the same way, so after
16 convs the first layers barely learn (the degradation of deep plain nets, He et al. 2016,
"Deep Residual Learning for Image Recognition"). Vanishing, not exploding: gradlint reports both.
Twin: resnet_bn.py keeps the depth but adds BatchNorm after every conv and identity skips, which
keep the forward and backward scales near 1 (Ioffe & Szegedy 2015; He et al. 2016).

Measured (torch 2.13 CPU, method in samples/README.md): activation-gradient ratio first conv /
head 1.5e-8 at init; 50 AdamW(lr=1e-3) steps on the example batch take the loss only from 2.27
to 1.81 (twin: ratio 0.36, loss 2.78 -> 0.03).
"""

import torch
import torch.nn as nn

CONVS, CHANNELS, CLASSES, BATCH, SIZE = 16, 16, 10, 8, 16


class PlainCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, CHANNELS, kernel_size=3, padding=1)
        # No BatchNorm, no residual: nothing re-scales the signal between the 15 body convs.
        self.body = nn.ModuleList(
            nn.Conv2d(CHANNELS, CHANNELS, kernel_size=3, padding=1) for _ in range(CONVS - 1)
        )
        self.act = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(CHANNELS, CLASSES)

    def forward(self, x):
        x = self.act(self.stem(x))
        for conv in self.body:
            x = self.act(conv(x))
        return self.head(self.pool(x).flatten(1))


def build_model():
    return PlainCNN()


def example_inputs():
    g = torch.Generator().manual_seed(0)
    return (torch.randn(BATCH, 3, SIZE, SIZE, generator=g),)


def example_targets():
    g = torch.Generator().manual_seed(1)
    return torch.randint(0, CLASSES, (BATCH,), generator=g)
