"""Activation rules (GL3xx): measured numbers in the messages, thresholds, and quiet standard models."""

from __future__ import annotations

import pytest

from gradlint.findings import Severity
from tests.rules.test_init import HEALTHY, number, only


def stack(activation: str, layers: int, init: str = "") -> str:
    """`layers` Linear(32, 32) + activation pairs, then a head; `init` runs on each layer."""
    return f'''
import torch.nn as nn

def build_model():
    layers = []
    for _ in range({layers}):
        layer = nn.Linear(32, 32)
        {init or "pass"}
        layers += [layer, nn.{activation}()]
    return nn.Sequential(*layers, nn.Linear(32, 4))
'''


def biased_relu(bias: float, batch: int = 8) -> str:
    return f'''
import torch
import torch.nn as nn

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(32, 64)
        self.head = nn.Linear(64, 10)
        nn.init.constant_(self.fc.bias, {bias})

    def forward(self, x):
        return self.head(torch.relu(self.fc(x)))

def build_model():
    return Net()

def example_inputs():
    return (torch.randn({batch}, 32),)
'''


@pytest.mark.parametrize("name", sorted(HEALTHY))
def test_standard_models_have_no_activation_findings(lint, name):
    report = lint(HEALTHY[name], select=["GL3"])
    assert report.error is None, report.error
    assert [f.message for f in report.findings] == []


# -- GL301 ------------------------------------------------------------------------------------
def test_saturation_reports_fraction_and_pre_activation_scale(lint):
    from gradlint.rules.activation.saturated_activations import SaturatedActivations

    [finding] = only(lint(SaturatedActivations.INVALID[0], select=["GL301"]), "GL301")
    # normal_(std=1) at fan_in 64: pre-activation RMS ~8, P(|h| > 2.65) ~ 0.74.
    assert 0.6 < number(r"^([0-9]+)% of the tanh after fc", finding.message) / 100 < 0.85
    assert 6 < number(r"pre-activation RMS ([0-9.]+)", finding.message) < 10
    assert finding.module == "fc"
    assert finding.fix.code == "nn.init.xavier_normal_(self.fc.weight)"


def test_saturation_groups_a_loop_into_one_finding(lint):
    findings = only(lint(stack("Tanh", 6, "nn.init.normal_(layer.weight, std=1.0)"), select=["GL301"]), "GL301")
    assert len(findings) == 1 and "(worst of 6 calls)" in findings[0].message


def test_saturation_quiet_below_half(lint):
    # std 0.35 at fan_in 32: pre-activation RMS ~2, ~19% beyond |h| = 2.65.
    source = stack("Tanh", 1, "nn.init.normal_(layer.weight, std=0.35)")
    assert only(lint(source, select=["GL301"]), "GL301") == []


# -- GL302 ------------------------------------------------------------------------------------
def test_sigmoid_stack_separates_slopes_from_weights(lint):
    from gradlint.rules.activation.saturating_stack_vanishes import SaturatingStackVanishes

    [finding] = only(lint(SaturatingStackVanishes.INVALID[0], select=["GL302"]), "GL302")
    assert finding.message.startswith("8 Sigmoid layers in a row with no normalization or skip")
    assert "(sigmoid' <= 1/4)" in finding.message
    slopes = number(r"activation slopes contribute ([0-9.e+-]+)", finding.message)
    assert slopes < (1 / 16) ** 7  # 7 links, E[sigmoid'**2] <= 1/16 each
    assert finding.severity is Severity.ERROR
    assert finding.weight <= 0.15
    assert finding.fix.code == "nn.LayerNorm(32)"


def test_tanh_stack_at_default_init_blames_the_weights(lint):
    [finding] = only(lint(stack("Tanh", 8), select=["GL302"]), "GL302")
    # Default init: sigma_w**2 = 1/3 per layer, slopes ~1 at small scale.
    weights = number(r"the weights ([0-9.e+-]+)$", finding.message)
    assert weights < 1e-3
    assert finding.fix.code.startswith("nn.init.xavier_normal_(")


@pytest.mark.parametrize("activation,layers,init", [
    ("Sigmoid", 5, "nn.init.xavier_normal_(layer.weight)"),  # shorter than the 6-layer stack
    ("Tanh", 24, "nn.init.xavier_normal_(layer.weight)"),  # critical for tanh: G ~ 2e-3
])
def test_saturating_stack_quiet(lint, activation, layers, init):
    assert only(lint(stack(activation, layers, init), select=["GL302"]), "GL302") == []


# -- GL303 ------------------------------------------------------------------------------------
def test_dead_relu_reports_fraction_and_negative_bias(lint):
    [finding] = only(lint(biased_relu(-1.0), select=["GL303"]), "GL303")
    # Pre-activation std ~0.58 with bias -1: P(active) ~ 4%, dead on 8 rows ~ 72% of units.
    fraction = number(r"^([0-9]+)% of the 64 units of relu after fc", finding.message) / 100
    assert 0.5 < fraction < 0.95
    assert "(mean bias of fc: -1)" in finding.message
    assert finding.fix.code == "nn.init.zeros_(self.fc.bias)"


def test_dead_relu_error_when_all_dead(lint):
    [finding] = only(lint(biased_relu(-5.0), select=["GL303"]), "GL303")
    assert finding.message.startswith("100% of the 64 units")
    assert finding.severity is Severity.ERROR


def test_dead_relu_needs_enough_rows(lint):
    # 4 rows: a healthy unit looks dead with probability 1/16, so the batch cannot tell.
    assert only(lint(biased_relu(-5.0, batch=4), select=["GL303"]), "GL303") == []
