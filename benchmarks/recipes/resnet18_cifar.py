"""ResNet-18 with BatchNorm on CIFAR-10, trained with SGD at lr 0.1, momentum 0.9, weight decay 5e-4.

Architecture: He et al. 2016 (arXiv:1512.03385), Table 1, the 18-layer column: four stages of two
basic blocks (3x3 conv, BN, ReLU, 3x3 conv, BN, added to the shortcut, ReLU) at 64, 128, 256 and
512 channels, the first block of stages 2-4 halving the resolution with a 1x1 convolution and BN
on the shortcut (their option B), global average pooling and one linear classifier. For 32x32
images the 7x7/2 stem and the max pooling become one 3x3/1 convolution, the usual CIFAR
adaptation. Convolutions start at He et al. 2015's normal init for ReLU (fan-out), BN at gamma 1
and beta 0.

Recipe: the widely used CIFAR schedule for it: SGD lr 0.1, momentum 0.9, weight decay 5e-4,
batch 128, cosine annealing over 200 epochs (stepped per epoch), no clipping.

Written here from those descriptions. `SIZE` picks the configuration (`full`: the published one;
`train`: a quarter of the width, for benchmarks/train_recipes.py on CPU; `small`: tiny, for the
test).
`make_batch` and `TRAIN_STEPS` are for the training script; gradlint never reads them.
"""

import torch
import torch.nn.functional as F
from torch import nn

SIZE = "full"
SIZES = {
    "full": {"width": 64, "batch": 16},
    "train": {"width": 16, "batch": 32},
    "small": {"width": 8, "batch": 8},
}
CLASSES = 10
TRAIN_STEPS = 150


class BasicBlock(nn.Module):
    def __init__(self, inputs, outputs, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(inputs, outputs, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(outputs)
        self.conv2 = nn.Conv2d(outputs, outputs, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(outputs)
        self.shortcut = nn.Sequential()
        if stride != 1 or inputs != outputs:
            self.shortcut = nn.Sequential(nn.Conv2d(inputs, outputs, 1, stride=stride, bias=False),
                                          nn.BatchNorm2d(outputs))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet18(nn.Module):
    def __init__(self, width=64, classes=CLASSES):
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        stages, channels = [], width
        for index, multiple in enumerate((1, 2, 4, 8)):
            outputs = width * multiple
            stride = 1 if index == 0 else 2
            stages.append(nn.Sequential(BasicBlock(channels, outputs, stride), BasicBlock(outputs, outputs, 1)))
            channels = outputs
        self.stages = nn.Sequential(*stages)
        self.fc = nn.Linear(channels, classes)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def forward(self, images):
        x = F.relu(self.bn1(self.conv1(images)))
        x = self.stages(x)
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def build_model():
    return ResNet18(SIZES[SIZE]["width"])


def _templates():
    """One fixed smooth 3x32x32 pattern per class: the synthetic task is to tell them apart in noise."""
    g = torch.Generator().manual_seed(1234)
    coarse = torch.randn(CLASSES, 3, 4, 4, generator=g)
    return F.interpolate(coarse, size=(32, 32), mode="bilinear", align_corners=False)


def make_batch(step):
    """Normalized CIFAR-shaped images: a class's pattern plus unit noise."""
    g = torch.Generator().manual_seed(step)
    batch = SIZES[SIZE]["batch"]
    labels = torch.randint(0, CLASSES, (batch,), generator=g)
    images = _templates()[labels] + torch.randn(batch, 3, 32, 32, generator=g)
    return (images,), labels


def example_inputs():
    return make_batch(0)[0]


def example_targets():
    return make_batch(0)[1]


def loss_fn(output, targets):
    return F.cross_entropy(output, targets)


def configure_optimizers(model):
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=200)
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "epoch"}}
