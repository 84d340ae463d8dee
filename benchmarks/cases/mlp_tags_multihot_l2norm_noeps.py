"""Class from L2-normalized multi-hot tag vectors, dividing by the norm without an eps.

Varied factor: numerics. Each of 32 tags is present independently (~6 per row), so about one
row in 250 has no tag: 0 / 0 = NaN in the forward pass (first at step 45, never in the example
batch).
Twin: mlp_tags_multihot_l2norm_eps.
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
    """L2-normalize the multi-hot tags, then classify with a small MLP."""

    def __init__(self):
        super().__init__()
        self.body = kit.mlp(32, 64, depth=2, out_dim=4)

    def forward(self, tags):
        return self.body(tags / tags.norm(dim=1, keepdim=True))


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
