"""VGG-16 with BatchNorm on CIFAR-10, trained with SGD at lr 0.05, momentum 0.9, weight decay 5e-4.

Architecture: Simonyan & Zisserman 2014 (arXiv:1409.1556), configuration D: thirteen 3x3
convolutions (64, 64, pool, 128, 128, pool, 256 x3, pool, 512 x3, pool, 512 x3, pool), each
followed by BatchNorm and ReLU as VGG is trained today (BN is Ioffe & Szegedy 2015's addition).
On 32x32 images the five poolings leave a 1x1x512 map, so the classifier is the CIFAR variant:
dropout, 512-512, ReLU, dropout, 512-512, ReLU, 512-10. Convolutions start at N(0, 2/(9 * out
channels)) with zero bias, linear layers at PyTorch's default.

Recipe: the common CIFAR recipe for VGG-16-BN: SGD lr 0.05, momentum 0.9, weight decay 5e-4,
batch 128, the lr halved every 30 epochs, no clipping.

Written here from those descriptions. `SIZE`: `full` (published), `train` (a quarter of the
width, for benchmarks/train_recipes.py), `small` (for the test). gradlint never reads `make_batch` or
`TRAIN_STEPS`.
"""

import math

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
# Configuration D in multiples of the first stage's width; "M" is a 2x2 max pooling.
LAYOUT = (1, 1, "M", 2, 2, "M", 4, 4, 4, "M", 8, 8, 8, "M", 8, 8, 8, "M")


class VGG16BN(nn.Module):
    def __init__(self, width=64, classes=CLASSES):
        super().__init__()
        layers, channels = [], 3
        for item in LAYOUT:
            if item == "M":
                layers.append(nn.MaxPool2d(2))
                continue
            outputs = width * item
            layers += [nn.Conv2d(channels, outputs, 3, padding=1), nn.BatchNorm2d(outputs), nn.ReLU(inplace=True)]
            channels = outputs
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(
            nn.Dropout(), nn.Linear(channels, channels), nn.ReLU(inplace=True),
            nn.Dropout(), nn.Linear(channels, channels), nn.ReLU(inplace=True),
            nn.Linear(channels, classes),
        )
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                fan_out = module.kernel_size[0] * module.kernel_size[1] * module.out_channels
                nn.init.normal_(module.weight, 0.0, math.sqrt(2.0 / fan_out))
                nn.init.zeros_(module.bias)

    def forward(self, images):
        return self.classifier(torch.flatten(self.features(images), 1))


def build_model():
    return VGG16BN(SIZES[SIZE]["width"])


def _templates():
    """One fixed smooth 3x32x32 pattern per class."""
    g = torch.Generator().manual_seed(4321)
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
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    schedule = torch.optim.lr_scheduler.StepLR(optimizer, step_size=30, gamma=0.5)
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "epoch"}}
