"""Hostile models, linted with every rule: no rule may raise on a model that loads and runs.

Each model here once ended in a rule raising (or, for a NaN recurrent weight, in LAPACK killing
the process), which cost the model its risk. Each test asserts the whole outcome: no error, and
exactly the findings the model deserves.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from gradlint.discover import Target
from gradlint.engine import Settings, lint_target
from gradlint.load import Overrides
from gradlint.registry import all_rules

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def codes(report) -> list[str]:
    return sorted(f.code for f in report.findings)


def lint_with(tmp_path, source: str, overrides: Overrides):
    """Every rule, with command-line overrides (the `lint` fixture takes none)."""
    path = tmp_path / "model.py"
    path.write_text(source)
    return lint_target(Target(str(path)), Settings(rules=tuple(all_rules())), overrides)


# -- 1. zero-initialized residual branches (Fixup) ------------------------------------------------
# No input or output layer: every weight GL601 measures is a branch's first layer, whose gradient
# the zeroed second layer blocks, so no measured weight moves on the first step (ratio 0).
FIXUP = '''
import torch
import torch.nn as nn

class Block(nn.Module):
    def __init__(self, width):
        super().__init__()
        self.fc1 = nn.Linear(width, width)
        self.fc2 = nn.Linear(width, width)
        nn.init.zeros_(self.fc2.weight)  # Fixup: the branch starts at zero
{zero_bias}
    def forward(self, x):
        return x + self.fc2(torch.relu(self.fc1(x)))

def build_model():
    return nn.Sequential(*[Block(32) for _ in range(4)])

def example_inputs():
    return (torch.randn(16, 32, generator=torch.Generator().manual_seed(0)),)

def configure_optimizers(model):
    return torch.optim.{optimizer}
'''


@pytest.mark.parametrize("optimizer", ["SGD(model.parameters(), lr=0.1)", "Adam(model.parameters(), lr=1e-3)"])
@pytest.mark.parametrize("zero_bias", ["", "        nn.init.zeros_(self.fc2.bias)\n"])
def test_zero_initialized_residual_branches(lint, optimizer, zero_bias):
    report = lint(FIXUP.format(optimizer=optimizer, zero_bias=zero_bias))
    assert report.error is None
    assert codes(report) == []
    assert report.evidence["m:first_update_ratio"] == 0.0  # nothing measured moves on the first step


def test_optimizer_over_biases_only_moves_no_weight(lint):
    """A subset of the model's tensors holding no weight matrix: every measured ratio is 0."""
    report = lint('''
import torch
import torch.nn as nn

def build_model():
    return nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 4))

def configure_optimizers(model):
    return torch.optim.SGD([model[0].bias, model[2].bias], lr=0.1)
''')
    assert report.error is None
    assert codes(report) == []
    assert report.evidence["m:first_update_ratio"] == 0.0


# -- 5. lr 0 -----------------------------------------------------------------------------------------
ZERO_LR = '''
import torch
import torch.nn as nn

def build_model():
    return nn.Sequential(nn.Linear(16, 32), nn.Tanh(), nn.Linear(32, 4))

def configure_optimizers(model):
    return torch.optim.{optimizer}
'''


@pytest.mark.parametrize("optimizer", ["SGD(model.parameters(), lr=0.0, momentum=0.9)",
                                       "Adam(model.parameters(), lr=0.0)", "AdamW(model.parameters(), lr=0.0)"])
def test_lr_zero_in_the_file_takes_no_step(lint, optimizer):
    report = lint(ZERO_LR.format(optimizer=optimizer))
    assert report.error is None
    assert codes(report) == []
    # No optimizer rule measured anything: there is no step.
    assert not any(name.startswith(("m:first_update", "m:lr_x", "m:adam_step", "m:lookahead", "m:resampled"))
                   for name in report.evidence)


@pytest.mark.parametrize("optimizer", [None, "SGD", "RMSprop"])
def test_lr_zero_on_the_command_line_takes_no_step(tmp_path, optimizer):
    report = lint_with(tmp_path, ZERO_LR.format(optimizer="Adam(model.parameters(), lr=10.0)"),
                       Overrides(lr=0.0, optimizer=optimizer))
    assert report.error is None
    assert codes(report) == []
