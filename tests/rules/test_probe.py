"""Probe-backward rules (GL5xx): measured numbers in the messages, thresholds on models whose
gradient gain is exact, where non-finite values are traced to, and quiet standard models."""

from __future__ import annotations

import re
import types

import pytest

from gradlint.findings import Severity
from gradlint.measure import gradients as _common
from gradlint.rules.probe import gradient_explodes_with_depth as gl502
from gradlint.rules.probe import gradient_vanishes_with_depth as gl503
from tests.rules._standard_models import ALL as STANDARD_MODELS


def scaled_identity_chain(depth: int, scale: float) -> str:
    """Linear layers W = scale * I with nothing between them: dL/dh grows exactly `scale`x per
    layer going backward, so the end-to-end gain is scale ** (depth - 1)."""
    return f'''
import torch
import torch.nn as nn

class Chain(nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(16, 16, bias=False) for _ in range({depth}))
        with torch.no_grad():
            for layer in self.layers:
                layer.weight.copy_({scale} * torch.eye(16))

    def forward(self, x):
        for layer in self.layers:
            x = layer(x)
        return x

def build_model():
    return Chain()
'''


def line_of(source: str, text: str) -> int:
    return next(n for n, line in enumerate(source.splitlines(), start=1) if text in line)


def only(report, code: str):
    assert report.error is None, report.error
    hits = [f for f in report.findings if f.code == code]
    assert len(hits) == 1, [f.message for f in report.findings]
    return hits[0]


def measured(text: str, pattern: str) -> float:
    """The number matched by the group NUM in `pattern`."""
    match = re.search(pattern.replace("NUM", r"([0-9.e+-]+)"), text)
    assert match, f"{pattern!r} not in {text!r}"
    return float(match.group(1))


# -- the fit ------------------------------------------------------------------------------------
def signals(deltas, activations=None):
    activations = activations or [1.0] * len(deltas)
    return tuple(_common.LayerSignal(types.SimpleNamespace(path=f"l{i}", name="Linear", output_shape=(8, 16)), d, a)
                 for i, (d, a) in enumerate(zip(deltas, activations)))


def test_growth_fits_chi_hat_and_finds_the_steepest_layer():
    trend = _common.growth(signals([3.0 ** (5 - i) for i in range(6)]))
    assert trend.chi == pytest.approx(9.0)  # ||delta||^2 grows 9x per layer
    assert trend.per_layer == pytest.approx(3.0)
    assert trend.gain == pytest.approx(3.0 ** 5)
    bumpy = _common.growth(signals([100.0, 10.0, 5.0, 1.0]))
    layer, factor = bumpy.steepest(growing=True)
    assert (layer.path, factor) == ("l1", pytest.approx(10.0))  # the step into l0 goes back through l1


def test_relative_sensitivity_is_invariant_to_layer_rescaling():
    # delta x4 and h /4 at every layer: the product, hence the GSC, does not move.
    assert _common.relative_sensitivities(signals([4.0, 16.0, 1.0], [0.25, 1 / 16, 1.0])) == pytest.approx([1, 1, 1])


def test_weights_are_monotone_and_bounded():
    explode = [gl502._weight(g) for g in (1e2, 1e3, 1e4, 1e6, 1e12)]
    assert explode == sorted(explode) and explode[0] == pytest.approx(0.3) and explode[2] == pytest.approx(0.6)
    assert explode[-1] == 0.9
    vanish = [gl503._weight(g) for g in (1e-4, 1e-6, 1e-20)]
    assert vanish == sorted(vanish) and vanish[0] == pytest.approx(0.05) and vanish[-1] == 0.15


# -- GL502 / GL503 / GL504 on exact gains -------------------------------------------------------
@pytest.mark.parametrize("depth,scale,severity", [(5, 3.0, None), (5, 4.0, Severity.WARNING),
                                                  (5, 11.0, Severity.ERROR)])
def test_explosion_thresholds(lint, depth, scale, severity):
    report = lint(scaled_identity_chain(depth, scale), select=["GL502"])
    if severity is None:  # 3**4 = 81 < 1e2
        assert report.error is None and report.findings == ()
        return
    finding = only(report, "GL502")
    assert finding.severity is severity
    assert measured(finding.message, r"is NUMx that at") == pytest.approx(scale ** (depth - 1), rel=0.05)
    assert f"grows {scale:.2g}x per layer" in finding.message
    assert "for layer in self.layers:" in finding.fix.code  # re-init the whole ModuleList in one loop
    assert "gradient_clip_val = 1.0" in finding.fix.message  # no clipping configured


def test_explosion_message_on_a_relu_mlp(lint):
    source = scaled_identity_chain(8, 1.0).replace(
        "layer.weight.copy_(1.0 * torch.eye(16))", "layer.weight.normal_(0.0, 1.0)").replace(
        "x = layer(x)", "x = torch.relu(layer(x))")
    finding = only(lint(source, select=["GL502"]), "GL502")
    per_layer = measured(finding.message, r"grows NUMx per layer")
    assert 2.0 < per_layer < 4.0  # sqrt(Var(W) fan_in / 2) = sqrt(8) = 2.8 for N(0, 1) before a ReLU
    assert 'nonlinearity="relu"' in finding.fix.code


def test_vanishing_threshold_and_small_weight(lint):
    assert lint(scaled_identity_chain(6, 0.2), select=["GL503"]).findings == ()  # 0.2**5 = 3.2e-4
    finding = only(lint(scaled_identity_chain(6, 0.1), select=["GL503"]), "GL503")  # 1e-5
    assert measured(finding.message, r"is NUMx that at") == pytest.approx(1e-5, rel=0.05)
    assert finding.severity is Severity.WARNING and finding.weight <= 0.15
    assert "kaiming_normal_" in finding.fix.code or "xavier" in finding.fix.code


def test_gsc_ignores_a_rescaled_chain_that_gl502_flags(lint):
    report = lint(scaled_identity_chain(5, 11.0), select=["GL502", "GL504"])
    assert [f.code for f in report.findings] == ["GL502"]


# -- GL501: where a non-finite value starts ------------------------------------------------------
LOG_OF_SOFTMAX = '''
import torch
import torch.nn as nn

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(16, 10)
        nn.init.normal_(self.fc.weight, std=200.0)

    def forward(self, x):
        return torch.log(torch.softmax(self.fc(x), dim=-1))

def build_model():
    return Net()
'''


def test_log_of_softmax_points_at_the_log_and_suggests_log_softmax(lint):
    finding = only(lint(LOG_OF_SOFTMAX, select=["GL501"]), "GL501")
    assert finding.location.line == line_of(LOG_OF_SOFTMAX, "torch.log(")
    assert "log_softmax" in finding.fix.code
    assert finding.severity is Severity.ERROR and finding.weight == pytest.approx(0.95)


def test_non_finite_loss_points_at_loss_fn(lint):
    source = '''
import torch
import torch.nn as nn

def build_model():
    return nn.Sequential(nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 1))

def loss_fn(output, targets):
    return -torch.log(output.relu() * 0).mean()
'''
    finding = only(lint(source, select=["GL501"]), "GL501")
    # The loss is traced with the forward: the finding points at the op inside loss_fn.
    assert finding.location.line == line_of(source, "torch.log(")
    assert "clamp" in finding.fix.message


def test_nan_input_is_reported_as_data(lint):
    source = '''
import torch
import torch.nn as nn

def build_model():
    return nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2))

def example_inputs():
    x = torch.randn(8, 4)
    x[0, 0] = float("nan")
    return (x,)
'''
    assert "example input contains NaN" in only(lint(source, select=["GL501"]), "GL501").message


def test_an_intended_minus_inf_mask_is_not_the_origin(lint):
    # The spread scales the logits rather than being added to all of them: cross-entropy's
    # gradient sums to zero over the classes, so an added spread's gradient was 0 or a rounding
    # residue depending on the CPU, and the backward of sqrt at 0 gave NaN (0 * inf) or inf.
    source = '''
import torch
import torch.nn as nn

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.q = nn.Linear(16, 16)
        self.out = nn.Linear(16, 4)

    def forward(self, x):
        scores = self.q(x) @ x.T
        mask = torch.triu(torch.full(scores.shape, float("-inf")), diagonal=1)
        attended = torch.softmax(scores + mask, dim=-1) @ x
        spread = (attended[:, None] - attended[None]).pow(2).sum(-1).sqrt()
        return self.out(attended) * (1 + spread.mean())

def build_model():
    return Net()
'''
    finding = only(lint(source, select=["GL501"]), "GL501")
    assert finding.location.line == line_of(source, ".sqrt()") and "backward of sqrt" in finding.message


# -- GL505 ------------------------------------------------------------------------------------------
def scaled_output(scale: float) -> str:
    return f'''
import torch
import torch.nn as nn

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4, bias=False)
        nn.init.eye_(self.fc.weight)

    def forward(self, x):
        return self.fc(x) * {scale}

def build_model():
    return Net()

def example_inputs():
    return (torch.ones(2, 4),)

def loss_fn(output, targets):
    return output.mean() * 1e-3  # keeps the gradients far below the threshold
'''


@pytest.mark.parametrize("scale,severity", [(7000.0, None), (9000.0, Severity.INFO), (70000.0, Severity.WARNING)])
def test_fp16_thresholds(lint, scale, severity):
    report = lint(scaled_output(scale), select=["GL505"])
    if severity is None:  # below 65504 / 8 = 8188
        assert report.error is None and report.findings == ()
        return
    finding = only(report, "GL505")
    assert finding.severity is severity and finding.location.line == line_of(scaled_output(scale), "* ")
    assert measured(finding.message, r"reach NUM at") == pytest.approx(scale, rel=0.05)


# -- healthy standard models --------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(STANDARD_MODELS))
def test_standard_models_are_quiet(lint, name):
    report = lint(STANDARD_MODELS[name], select=["GL5"])
    assert report.error is None, report.error
    assert report.findings == (), [f"{f.code}: {f.message}" for f in report.findings]

