"""Depth rules (GL1xx): measured numbers in the messages, thresholds, and quiet standard models."""

from __future__ import annotations

import re

import pytest

from gradlint.findings import Severity
from tests.rules._standard_models import ALL as STANDARD_MODELS


def plain_mlp(depth: int, norm: bool = False, width: int = 32) -> str:
    """`depth` Linear layers in a row (default init, ReLU), optionally each followed by a LayerNorm."""
    hidden = f"nn.Linear({width}, {width}), " + (f"nn.LayerNorm({width}), " if norm else "") + "nn.ReLU()"
    return f'''
import torch.nn as nn

def build_model():
    layers = [nn.Linear(16, {width}), nn.ReLU()]
    for _ in range({depth - 2}):
        layers += [{hidden}]
    return nn.Sequential(*layers, nn.Linear({width}, 4))
'''


def residual_mlp(blocks: int, branch_scale: str = "1.0") -> str:
    """Unnormalized residual blocks x + s * fc2(relu(fc1(x))) with He-initialized branches."""
    return f'''
import torch
import torch.nn as nn

class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(32, 32)
        self.fc2 = nn.Linear(32, 32)
        for fc in (self.fc1, self.fc2):
            nn.init.kaiming_normal_(fc.weight, nonlinearity="relu")
            nn.init.zeros_(fc.bias)

    def forward(self, x):
        return x + {branch_scale} * self.fc2(torch.relu(self.fc1(x)))

def build_model():
    return nn.Sequential(nn.Linear(16, 32), *[Block() for _ in range({blocks})], nn.Linear(32, 4))

def example_inputs():
    return (torch.randn(64, 16),)
'''


def only(report, code):
    assert report.error is None, report.error
    return [f for f in report.findings if f.code == code]


@pytest.mark.parametrize("depth,fires", [(7, False), (8, True)])
def test_deep_plain_stack_threshold(lint, depth, fires):
    assert bool(only(lint(plain_mlp(depth), select=["GL101"]), "GL101")) == fires


def test_deep_plain_stack_reports_depth_and_signal_decay(lint):
    [finding] = only(lint(plain_mlp(12), select=["GL101"]), "GL101")
    assert finding.message.startswith("12 weighted layers in a row")
    # PyTorch's default init before ReLU: the gradient's mean square shrinks ~6x per layer (chi_1 = 1/6).
    per_layer = float(re.search(r"\(([0-9.e+-]+)x per layer\)", finding.message).group(1))
    assert 0.05 < per_layer < 0.4
    assert finding.severity is Severity.ERROR  # > 4 decades over 12 layers
    assert finding.weight <= 0.15  # vanishing: trainability, not divergence
    assert "nn.LayerNorm(32)" in finding.fix.code


def test_deep_plain_stack_quiet_when_normalized(lint):
    assert only(lint(plain_mlp(12, norm=True), select=["GL101"]), "GL101") == []


def test_residual_variance_growth_measures_the_stream(lint):
    [finding] = only(lint(residual_mlp(10), select=["GL103"]), "GL103")
    # Two-layer He branches: Var(x + f(x)) ~ 3 Var(x) per block (docs/theory.md, B1).
    per_block = float(re.search(r"grows ([0-9.]+)x per block over 10 blocks", finding.message).group(1))
    assert 2.0 < per_block < 4.0
    assert finding.severity is Severity.ERROR
    assert finding.fix.code == "nn.init.zeros_(self.fc2.weight)"
    assert finding.module == "1.fc2"


@pytest.mark.parametrize("blocks,scale", [(3, "1.0"), (10, "0.3")])
def test_residual_variance_growth_quiet_below_threshold(lint, blocks, scale):
    # 3 blocks: ~27x < 1e2. Branch scale 0.3 ~ 1/sqrt(10): (1 + 0.09 * 2)^10 ~ 5x.
    assert only(lint(residual_mlp(blocks, scale), select=["GL103"]), "GL103") == []


def test_residual_variance_growth_weight_grows_with_depth(lint):
    [shallow] = only(lint(residual_mlp(6), select=["GL103"]), "GL103")
    [deep] = only(lint(residual_mlp(12), select=["GL103"]), "GL103")
    assert deep.weight > shallow.weight


def test_effective_depth_reports_both_depths(lint):
    from gradlint.rules.depth.effective_depth import EffectiveDepth

    [finding] = only(lint(EffectiveDepth.INVALID[0], select=["GL102"]), "GL102")
    assert finding.message.startswith("effective depth 9 of compositional depth 11")
    assert finding.severity is Severity.INFO


def test_width_depth_ratio_beta(lint):
    from gradlint.rules.depth.width_depth_ratio import WidthDepthRatio

    [finding] = only(lint(WidthDepthRatio.INVALID[0], select=["GL104"]), "GL104")
    assert "beta = sum(1/width) = 0.75 over 6 hidden layers" in finding.message
    assert "12 units" in finding.fix.message


@pytest.mark.parametrize("name", sorted(STANDARD_MODELS))
def test_standard_models_have_no_depth_findings(lint, name):
    report = lint(STANDARD_MODELS[name], select=["GL1"])
    assert report.error is None, report.error
    assert [f.message for f in report.findings] == []
