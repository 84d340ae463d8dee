"""Topic classifier on L2-normalized bag-of-words counts of long documents, no eps.

Varied factor: numerics that never trigger. Documents hold ~40 words, so none is ever empty and
the norm never reaches zero, although most counts are zero (words cluster by topic).
Related: mlp_bow_l2norm_noeps (short documents, sometimes empty).
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


class NormalizedBagOfWords(nn.Module):
    """L2-normalize word counts, then classify the topic with a small MLP."""

    def __init__(self):
        super().__init__()
        self.body = kit.mlp(64, 64, depth=2, out_dim=4)

    def forward(self, counts):
        return self.body(counts / counts.norm(dim=1, keepdim=True))


def build_model():
    return NormalizedBagOfWords()


def make_batch(step):
    return kit.bag_of_words_batch(step, batch=32, mean_length=40.0)


def example_inputs():
    return make_batch(0)[0]


def example_targets():
    return make_batch(0)[1]


def loss_fn(output, targets):
    return nn.functional.cross_entropy(output, targets)


def configure_optimizers(model):
    return torch.optim.Adam(model.parameters(), lr=3e-3)
