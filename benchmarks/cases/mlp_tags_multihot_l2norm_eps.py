"""Class from L2-normalized multi-hot tag vectors, with F.normalize's eps.

Varied factor: numerics (the fixed twin). Rows without a tag normalize to zero instead of NaN.
Twin: mlp_tags_multihot_l2norm_noeps.
"""

import sys
from pathlib import Path

import torch
from torch import nn

try:  # truth.py puts benchmarks/ on sys.path
    import _casekit as kit
except ImportError:  # loaded as a plain file (e.g. by gradlint): the helper is one folder up
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import _casekit as kit


TRAIN_STEPS = 200


class NormalizedTags(nn.Module):
    """L2-normalize the multi-hot tags (eps guarded), then classify with a small MLP."""

    def __init__(self):
        super().__init__()
        self.body = kit.mlp(32, 64, depth=2, out_dim=4)

    def forward(self, tags):
        return self.body(nn.functional.normalize(tags, dim=1))


def build_model():
    return NormalizedTags()


def make_batch(step):
    return kit.multi_hot_tags_batch(step, batch=32)


def example_inputs():
    return make_batch(0)[0]


def example_targets():
    return make_batch(0)[1]


def loss_fn(output, targets):
    return nn.functional.cross_entropy(output, targets)


def configure_optimizers(model):
    return torch.optim.Adam(model.parameters(), lr=3e-3)
