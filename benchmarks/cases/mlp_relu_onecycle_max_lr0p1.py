"""ReLU MLP (4 hidden layers of 64, Kaiming init), teacher regression, SGD with a one-cycle
schedule peaking at lr 0.1.

Varied factor: peak learning rate of the schedule (below the edge of stability, ~0.2).
Twin: mlp_relu_onecycle_max_lr0p5.
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


def build_model():
    return kit.mlp(32, 64, depth=4, out_dim=4, act=nn.ReLU, init="kaiming")


def make_batch(step):
    return kit.teacher_regression(step, batch=32)


def example_inputs():
    return make_batch(0)[0]


def example_targets():
    return make_batch(0)[1]


def loss_fn(output, targets):
    return nn.functional.mse_loss(output, targets)


def configure_optimizers(model):
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    # PyTorch-Lightning's dict shape; the one-cycle schedule warms up to max_lr at 30% of training.
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=0.1, total_steps=TRAIN_STEPS)
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}
