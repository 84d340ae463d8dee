"""U-Net for binary segmentation, trained with Adam at lr 1e-4.

Architecture: Ronneberger et al. 2015 (arXiv:1505.04597): a contracting path of four levels,
each two 3x3 convolutions with ReLU then a 2x2 max pooling, doubling the channels from 64 to 1024
at the bottom; an expanding path of 2x2 up-convolutions halving the channels, each concatenated
with the contracting path's feature map of the same level and followed by two 3x3 convolutions;
a 1x1 convolution to the output. As it is usually trained today, the convolutions are padded
(the output keeps the input's size) and each is followed by BatchNorm. Convolutions start at
the paper's N(0, 2/N), N = 9 x input channels.

Recipe: Adam lr 1e-4 (the common choice for U-Nets since; the paper used SGD with momentum 0.99
on single images), binary cross-entropy on the logits, no schedule, no clipping.

Written here from those descriptions. `SIZE`: `full` (64 channels at the top, 128x128 images),
`train` (16 channels, 64x64), `small` (4 channels, 32x32, for the test). gradlint never reads
`make_batch` or `TRAIN_STEPS`.
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

SIZE = "full"
SIZES = {
    "full": {"width": 64, "image": 128, "batch": 2},
    "train": {"width": 16, "image": 64, "batch": 8},
    "small": {"width": 4, "image": 32, "batch": 4},
}
TRAIN_STEPS = 150


def double_conv(inputs, outputs):
    return nn.Sequential(
        nn.Conv2d(inputs, outputs, 3, padding=1, bias=False), nn.BatchNorm2d(outputs), nn.ReLU(inplace=True),
        nn.Conv2d(outputs, outputs, 3, padding=1, bias=False), nn.BatchNorm2d(outputs), nn.ReLU(inplace=True),
    )


class UNet(nn.Module):
    def __init__(self, width=64, in_channels=3, out_channels=1, levels=4):
        super().__init__()
        channels = [width * 2 ** level for level in range(levels + 1)]  # 64 ... 1024
        self.down = nn.ModuleList([double_conv(in_channels, channels[0])] +
                                  [double_conv(channels[i], channels[i + 1]) for i in range(levels)])
        self.up = nn.ModuleList([nn.ConvTranspose2d(channels[i + 1], channels[i], 2, stride=2)
                                 for i in reversed(range(levels))])
        self.merge = nn.ModuleList([double_conv(2 * channels[i], channels[i]) for i in reversed(range(levels))])
        self.out = nn.Conv2d(channels[0], out_channels, 1)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                fan_in = module.in_channels * module.kernel_size[0] * module.kernel_size[1]
                nn.init.normal_(module.weight, 0.0, math.sqrt(2.0 / fan_in))

    def forward(self, images):
        skips = []
        x = images
        for index, block in enumerate(self.down):
            x = block(x if index == 0 else F.max_pool2d(x, 2))
            skips.append(x)
        skips.pop()  # the bottom level feeds the first up-convolution directly
        for up, merge in zip(self.up, self.merge):
            x = merge(torch.cat([skips.pop(), up(x)], dim=1))
        return self.out(x)


def build_model():
    return UNet(SIZES[SIZE]["width"])


def make_batch(step):
    """Noisy images of one to three bright discs; the target mask marks the discs."""
    size = SIZES[SIZE]
    g = torch.Generator().manual_seed(step)
    n, side = size["batch"], size["image"]
    ys, xs = torch.meshgrid(torch.arange(side, dtype=torch.float32), torch.arange(side, dtype=torch.float32),
                            indexing="ij")
    masks = torch.zeros(n, 1, side, side)
    for i in range(n):
        for _ in range(int(torch.randint(1, 4, (1,), generator=g))):
            cy, cx = (torch.rand(2, generator=g) * side).tolist()
            radius = float(side * (0.08 + 0.12 * torch.rand(1, generator=g)))
            masks[i, 0] = torch.maximum(masks[i, 0], (((ys - cy) ** 2 + (xs - cx) ** 2) < radius ** 2).float())
    images = masks.expand(n, 3, side, side) * 1.5 + torch.randn(n, 3, side, side, generator=g)
    return (images,), masks


def example_inputs():
    return make_batch(0)[0]


def example_targets():
    return make_batch(0)[1]


def loss_fn(output, targets):
    return F.binary_cross_entropy_with_logits(output, targets)


def configure_optimizers(model):
    return torch.optim.Adam(model.parameters(), lr=1e-4)
