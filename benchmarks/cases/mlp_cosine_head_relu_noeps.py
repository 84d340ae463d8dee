"""Cosine classifier on ReLU features of the sklearn digits, dividing by norms without an eps.

Varied factor: numerics that rarely trigger. A 64-unit ReLU feature vector is all zero only if
every unit is off for that image; the class weights' norms never vanish.
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


class CosineClassifier(nn.Module):
    """ReLU MLP features, then logits = 10 * cos(features, class weights)."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU())
        self.classes = nn.Parameter(torch.randn(10, 64) * 0.1)

    def forward(self, x):
        h = self.features(x)
        h = h / h.norm(dim=1, keepdim=True)
        w = self.classes / self.classes.norm(dim=1, keepdim=True)
        return 10.0 * h @ w.t()


def build_model():
    return CosineClassifier()


def make_batch(step):
    return kit.digits_batch(step, batch=32)


def example_inputs():
    return make_batch(0)[0]


def example_targets():
    return make_batch(0)[1]


def loss_fn(output, targets):
    return nn.functional.cross_entropy(output, targets)


def configure_optimizers(model):
    return torch.optim.Adam(model.parameters(), lr=3e-3)
