"""ViT-S/16 trained with AdamW (lr 1e-3, weight decay 0.05) after a 5-epoch linear warmup.

Architecture: Dosovitskiy et al. 2020 (arXiv:2010.11929): the image cut into 16x16 patches, each
projected to the width by one strided convolution, a learned class token and position
embeddings, Pre-LN Transformer blocks x = x + MHSA(LN(x)), x = x + MLP(LN(x)) with a 4x GELU MLP,
a final LayerNorm and a linear head on the class token. The S size (width 384, 12 blocks, 6
heads) is Touvron et al. 2021's DeiT-S. Linear weights and the embeddings start at a normal
truncated at 2 standard deviations, std 0.02, biases at zero.

Recipe: DeiT's (arXiv:2012.12877): AdamW at lr 5e-4 x batch / 512 (1e-3 at batch 1024), weight
decay 0.05, 5 epochs of linear warmup from 1e-6, then cosine decay over 300 epochs, stepped per
epoch; no clipping; label smoothing 0.1.

Written here from those descriptions. `SIZE`: `full` (ViT-S/16 on 224x224 images), `train` (32x32
images in 4x4 patches, width 128, 6 blocks, for benchmarks/train_recipes.py), `small` (for the
test). gradlint never reads `make_batch` or `TRAIN_STEPS`.
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

SIZE = "full"
SIZES = {
    "full": {"image": 224, "patch": 16, "width": 384, "depth": 12, "heads": 6, "batch": 8},
    "train": {"image": 32, "patch": 4, "width": 128, "depth": 6, "heads": 4, "batch": 16},
    "small": {"image": 32, "patch": 8, "width": 32, "depth": 4, "heads": 2, "batch": 8},
}
CLASSES = 10
TRAIN_STEPS = 200
PEAK_LR, START_LR, WARMUP_EPOCHS, EPOCHS = 1e-3, 1e-6, 5, 300


class Attention(nn.Module):
    def __init__(self, width, heads):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)

    def forward(self, x):
        batch, tokens, width = x.shape
        q, k, v = self.qkv(x).reshape(batch, tokens, 3, self.heads, width // self.heads).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v)
        return self.proj(y.transpose(1, 2).reshape(batch, tokens, width))


class Block(nn.Module):
    def __init__(self, width, heads):
        super().__init__()
        self.norm1 = nn.LayerNorm(width, eps=1e-6)
        self.attn = Attention(width, heads)
        self.norm2 = nn.LayerNorm(width, eps=1e-6)
        self.mlp = nn.Sequential(nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width))

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class VisionTransformer(nn.Module):
    def __init__(self, image, patch, width, depth, heads, classes=CLASSES):
        super().__init__()
        self.patch_embed = nn.Conv2d(3, width, patch, stride=patch)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, width))
        self.pos_embed = nn.Parameter(torch.zeros(1, (image // patch) ** 2 + 1, width))
        self.blocks = nn.Sequential(*[Block(width, heads) for _ in range(depth)])
        self.norm = nn.LayerNorm(width, eps=1e-6)
        self.head = nn.Linear(width, classes)
        nn.init.trunc_normal_(self.cls_token, std=0.02, a=-0.04, b=0.04)
        nn.init.trunc_normal_(self.pos_embed, std=0.02, a=-0.04, b=0.04)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.02, a=-0.04, b=0.04)
                nn.init.zeros_(module.bias)

    def forward(self, images):
        x = self.patch_embed(images).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos_embed
        x = self.norm(self.blocks(x))
        return self.head(x[:, 0])


def build_model():
    size = SIZES[SIZE]
    return VisionTransformer(size["image"], size["patch"], size["width"], size["depth"], size["heads"])


def _templates(image):
    """One fixed smooth 3-channel pattern per class."""
    coarse = torch.randn(CLASSES, 3, 4, 4, generator=torch.Generator().manual_seed(2010))
    return F.interpolate(coarse, size=(image, image), mode="bilinear", align_corners=False)


def make_batch(step):
    """Normalized images: a class's pattern plus unit noise."""
    size = SIZES[SIZE]
    g = torch.Generator().manual_seed(step)
    labels = torch.randint(0, CLASSES, (size["batch"],), generator=g)
    images = _templates(size["image"])[labels] + torch.randn(size["batch"], 3, size["image"], size["image"],
                                                              generator=g)
    return (images,), labels


def example_inputs():
    return make_batch(0)[0]


def example_targets():
    return make_batch(0)[1]


def loss_fn(output, targets):
    return F.cross_entropy(output, targets, label_smoothing=0.1)


def _lr_factor(epoch):
    """Linear warmup from START_LR over WARMUP_EPOCHS, then cosine decay to 0 at EPOCHS (a factor of PEAK_LR)."""
    if epoch < WARMUP_EPOCHS:
        return (START_LR + (PEAK_LR - START_LR) * epoch / WARMUP_EPOCHS) / PEAK_LR
    return 0.5 * (1.0 + math.cos(math.pi * (epoch - WARMUP_EPOCHS) / (EPOCHS - WARMUP_EPOCHS)))


def configure_optimizers(model):
    optimizer = torch.optim.AdamW(model.parameters(), lr=PEAK_LR, weight_decay=0.05)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, _lr_factor)
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "epoch"}}
