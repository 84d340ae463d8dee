"""Initialization rules (GL2xx): measured numbers in the messages, thresholds, exemptions, and
quiet standard models."""

from __future__ import annotations

import math
import re

import pytest

from gradlint.findings import Severity
from gradlint.measure.signal import mean_squared_slope
from tests.rules._standard_models import ALL as STANDARD_MODELS

# Healthy models beyond the shared set that init rules could plausibly misread: default-init
# LeNet (a 5-layer plain chain), a shallow tanh net, tied-free GRU LM with N(0, 1) embeddings,
# nn.Transformer (Xavier before ReLU, but 2-layer FFN chains), a VGG with BatchNorm.
EXTRA_HEALTHY = {
    "lenet": '''
import torch
import torch.nn as nn

def build_model():
    return nn.Sequential(nn.Conv2d(1, 6, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(6, 16, 5), nn.ReLU(),
                         nn.MaxPool2d(2), nn.Flatten(), nn.Linear(256, 120), nn.ReLU(), nn.Linear(120, 84),
                         nn.ReLU(), nn.Linear(84, 10))

def example_inputs():
    return (torch.randn(8, 1, 28, 28),)
''',
    "tanh-mlp": '''
import torch.nn as nn

def build_model():
    return nn.Sequential(nn.Linear(8, 64), nn.Tanh(), nn.Linear(64, 64), nn.Tanh(), nn.Linear(64, 2), nn.Tanh())
''',
    "gru-lm": '''
import torch
import torch.nn as nn

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(100, 32)
        self.gru = nn.GRU(32, 64, batch_first=True)
        self.head = nn.Linear(64, 100)

    def forward(self, tokens):
        return self.head(self.gru(self.embed(tokens))[0])

def build_model():
    return Net()

def example_inputs():
    return (torch.randint(0, 100, (4, 12)),)
''',
    "post-ln-transformer-xavier": '''
import torch
import torch.nn as nn

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(50, 32)
        self.transformer = nn.Transformer(32, 4, 2, 2, 64, batch_first=True)
        self.head = nn.Linear(32, 50)

    def forward(self, tokens):
        x = self.embed(tokens)
        return self.head(self.transformer(x, x))

def build_model():
    return Net()

def example_inputs():
    return (torch.randint(0, 50, (4, 12)),)
''',
}
HEALTHY = {**STANDARD_MODELS, **EXTRA_HEALTHY}


def only(report, code):
    assert report.error is None, report.error
    return [f for f in report.findings if f.code == code]


def number(pattern: str, text: str) -> float:
    return float(re.search(pattern, text).group(1))


def relu_mlp(layers: int, init: str = "", width: int = 32) -> str:
    """`layers` Linear layers joined by ReLU (the last one the head); `init` runs on each hidden layer."""
    return f'''
import torch.nn as nn

def build_model():
    layers = []
    for _ in range({layers - 1}):
        layer = nn.Linear({width}, {width})
        {init or "pass"}
        layers += [layer, nn.ReLU()]
    return nn.Sequential(*layers, nn.Linear({width}, 4))
'''


@pytest.mark.parametrize("name", sorted(HEALTHY))
def test_standard_models_have_no_init_findings(lint, name):
    report = lint(HEALTHY[name], select=["GL2"])
    assert report.error is None, report.error
    assert [f.message for f in report.findings] == []


def test_slope_table_matches_mean_field_values():
    assert mean_squared_slope("ReLU", 3.0) == pytest.approx(0.5, abs=1e-3)  # whatever the scale
    assert mean_squared_slope("tanh", 1e-6) == pytest.approx(1.0, abs=1e-3)
    assert mean_squared_slope("Sigmoid", 1e-6) == pytest.approx(1 / 16, abs=1e-3)  # sigmoid' <= 1/4
    # tanh at sigma_w**2 = 3, q* = 1.345: chi_1 = 1.239 (docs/theory.md A1; G1 measured 1.239)
    assert 3 * mean_squared_slope("tanh", 1.345) == pytest.approx(1.239, abs=0.01)
    assert mean_squared_slope(None, 5.0) == 1.0


# -- GL201 ------------------------------------------------------------------------------------
def test_init_scale_reports_ratio_and_chi(lint):
    from gradlint.rules.init.init_scale_too_large import InitScaleTooLarge

    [finding] = only(lint(InitScaleTooLarge.INVALID[0], select=["GL201"]), "GL201")
    # normal_(std=1) at fan_in 64 before ReLU: Var(W) * fan_in = 64, 32x the critical 2.
    assert 25 < number(r", ([0-9.]+)x the critical 2 before relu", finding.message) < 40
    assert finding.severity is Severity.ERROR
    assert finding.fix.code == 'nn.init.kaiming_normal_(self.fc1.weight, nonlinearity="relu")'


# -- GL202 ------------------------------------------------------------------------------------
def test_compounded_gain_explodes_from_modest_per_layer_excess(lint):
    from gradlint.rules.init.compounded_init_gain import CompoundedInitGain

    report = lint(CompoundedInitGain.INVALID[0], select=["GL201", "GL202"])
    assert only(report, "GL201") == []  # each layer alone is only 1.69x critical
    [finding] = only(report, "GL202")
    # 15 links at chi_1 = 1.3**2 = 1.69, then the default-init head (1/3 * 1/2): ~2.6e3 / 6 = 440.
    gain = number(r"backward gain of ([0-9.e+-]+) in mean square", finding.message)
    assert 150 < gain < 1500
    assert finding.severity is Severity.WARNING
    assert 0.3 <= finding.weight <= 0.5
    assert finding.message.startswith("17 weighted layers joined only by ReLU (layer 0 ... layer 32)")


@pytest.mark.parametrize("layers,severity", [(6, None), (9, Severity.INFO), (20, Severity.WARNING)])
def test_compounded_gain_vanishing_levels_for_default_init(lint, layers, severity):
    # PyTorch's default init before ReLU: chi_1 = 1/6 per link (docs/theory.md, A1).
    findings = only(lint(relu_mlp(layers), select=["GL202"]), "GL202")
    assert [f.severity for f in findings] == ([severity] if severity else [])
    for finding in findings:
        assert 0.12 < number(r"\(([0-9.]+)x per layer", finding.message) < 0.22
        assert finding.weight <= 0.15


def test_compounded_gain_weight_grows_with_the_gain(lint):
    init = "nn.init.normal_(layer.weight, std={} * (2 / 32) ** 0.5)"
    [mild] = only(lint(relu_mlp(12, init.format(1.5)), select=["GL202"]), "GL202")
    [strong] = only(lint(relu_mlp(12, init.format(2.5)), select=["GL202"]), "GL202")
    assert strong.weight > mild.weight and strong.severity is Severity.ERROR


def test_compounded_gain_counts_each_call_of_a_shared_layer(lint):
    source = '''
import torch
import torch.nn as nn

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(32, 32)
        nn.init.normal_(self.fc.weight, std=0.5)  # chi_1 = 32 * 0.25 / 2 = 4 per call

    def forward(self, x):
        for _ in range(6):
            x = torch.relu(self.fc(x))
        return x

def build_model():
    return Net()
'''
    [finding] = only(lint(source, select=["GL202"]), "GL202")
    assert finding.message.startswith("6 weighted layers joined only by relu (fc)")


def test_compounded_gain_ignores_a_zero_initialized_classifier(lint):
    # Fixup zero-initializes the classifier: its gain is 0 until the first step, not a vanishing chain.
    source = relu_mlp(5, "nn.init.kaiming_normal_(layer.weight)").replace(
        "return nn.Sequential(*layers, nn.Linear(32, 4))",
        "head = nn.Linear(32, 4)\n    nn.init.zeros_(head.weight)\n    return nn.Sequential(*layers, head)")
    report = lint(source, select=["GL2"])
    assert report.error is None, report.error
    assert report.findings == ()


def test_compounded_gain_ignores_residual_blocks(lint):
    source = '''
import torch
import torch.nn as nn

class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(32, 32)
        self.fc2 = nn.Linear(32, 32)
        for fc in (self.fc1, self.fc2):
            nn.init.normal_(fc.weight, std=1.5 * (2 / 32) ** 0.5)

    def forward(self, x):
        return x + 0.1 * self.fc2(torch.relu(self.fc1(x)))

def build_model():
    return nn.Sequential(*[Block() for _ in range(12)])
'''
    assert only(lint(source, select=["GL202"]), "GL202") == []


# -- GL203 ------------------------------------------------------------------------------------
def test_symmetric_init_names_the_constant(lint):
    from gradlint.rules.init.symmetric_weight_init import SymmetricWeightInit

    findings = only(lint(SymmetricWeightInit.INVALID[0], select=["GL203"]), "GL203")
    assert sorted(f.module for f in findings) == ["fc1", "fc2"]  # not fc3, the classifier
    fc1 = next(f for f in findings if f.module == "fc1")
    assert fc1.message.startswith("all 32 output units of fc1 start as copies (every weight row is 0.05")
    assert fc1.fix.code == 'nn.init.kaiming_normal_(self.fc1.weight, nonlinearity="relu")'


def test_symmetric_init_all_zero_tanh_net(lint):
    source = '''
import torch.nn as nn

def build_model():
    layers = [nn.Linear(16, 32), nn.Tanh(), nn.Linear(32, 32), nn.Tanh(), nn.Linear(32, 4)]
    for layer in layers[::2]:
        nn.init.zeros_(layer.weight)
        nn.init.zeros_(layer.bias)  # with random biases the units would differ after all
    return nn.Sequential(*layers)
'''
    findings = only(lint(source, select=["GL2"]), "GL203")
    assert sorted(f.module for f in findings) == ["0", "2"]
    assert "(every weight row is 0," in findings[0].message


def test_symmetric_init_quiet_when_the_next_layer_breaks_symmetry(lint):
    source = '''
import torch
import torch.nn as nn

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(16, 32)
        self.fc2 = nn.Linear(32, 4)
        nn.init.zeros_(self.fc1.weight)  # fc2 is random: the units get different gradients

    def forward(self, x):
        return self.fc2(torch.tanh(self.fc1(x)))

def build_model():
    return Net()
'''
    assert only(lint(source, select=["GL203"]), "GL203") == []


# -- GL204 ------------------------------------------------------------------------------------
def test_embedding_scale_reports_the_scaled_rms_and_a_std(lint):
    from gradlint.rules.init.embedding_scale_too_large import EmbeddingScaleTooLarge

    [finding] = only(lint(EmbeddingScaleTooLarge.INVALID[0], select=["GL204"]), "GL204")
    # N(0, 1) entries times sqrt(64): RMS 8.
    assert 7 < number(r"vectors of RMS ([0-9.]+)", finding.message) < 9
    assert "scaled after lookup" in finding.message
    assert finding.severity is Severity.WARNING
    std = number(r"std=([0-9.]+)\)", finding.fix.code)
    assert std == pytest.approx(1 / 8, rel=0.15)


# -- GL205 ------------------------------------------------------------------------------------
def test_output_scale_estimates_the_initial_cross_entropy(lint):
    from gradlint.rules.init.output_scale_too_large import OutputScaleTooLarge

    [finding] = only(lint(OutputScaleTooLarge.INVALID[0], select=["GL205"]), "GL205")
    assert finding.message.startswith("head, the layer producing the model output, gives values of RMS")
    assert f"vs ln(10) = {math.log(10):.3g}" in finding.message
    assert number(r"expected initial cross-entropy ([0-9.]+)", finding.message) > 3 * math.log(10)


def test_output_scale_points_below_when_the_input_is_already_large(lint):
    source = relu_mlp(8, "nn.init.normal_(layer.weight, std=0.5)")
    [finding] = only(lint(source, select=["GL205"]), "GL205")
    assert "so the growth happens below it" in finding.message
    assert finding.severity is Severity.ERROR
    assert finding.fix.code.startswith("nn.LayerNorm(32)")


def test_output_scale_for_a_regression_loss(lint):
    source = '''
import torch
import torch.nn as nn
import torch.nn.functional as F

def build_model():
    head = nn.Linear(64, 3)
    nn.init.normal_(head.weight, std=1.0)
    return nn.Sequential(nn.Linear(16, 64), nn.LayerNorm(64), head)

def example_inputs():
    return (torch.randn(8, 16),)

def example_targets():
    return torch.randn(8, 3)

def loss_fn(output, targets):
    return F.mse_loss(output, targets)
'''
    [finding] = only(lint(source, select=["GL205"]), "GL205")
    assert "targets are O(1)" in finding.message


# -- GL206 ------------------------------------------------------------------------------------
def test_mismatch_names_the_scheme_and_chi(lint):
    from gradlint.rules.init.init_activation_mismatch import InitActivationMismatch

    [he_tanh] = only(lint(InitActivationMismatch.INVALID[0], select=["GL206"]), "GL206")
    assert he_tanh.message.startswith("6 layers built here are initialized at He scale (Var(W)*fan_in = ")
    assert "critical value is 1" in he_tanh.message
    assert he_tanh.severity is Severity.INFO
    assert re.fullmatch(r"nn\.init\.xavier_normal_\((self|model)\.layers\[0\]\.weight\)", he_tanh.fix.code)


def test_mismatch_is_a_warning_in_deep_relu_stacks(lint):
    [finding] = only(lint(relu_mlp(22, "nn.init.xavier_uniform_(layer.weight)"), select=["GL206"]), "GL206")
    assert finding.severity is Severity.WARNING
    # Xavier on a square layer before ReLU: chi_1 = 1 * 1/2.
    assert 0.4 < number(r"chi_1 = ([0-9.]+) per layer", finding.message) < 0.6


# -- GL207 regression-targets-unscaled -------------------------------------------------------------
REGRESSION = '''
import torch
import torch.nn as nn

def build_model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 1){head})

def example_inputs():
    return (torch.randn(64, 8, generator=torch.Generator().manual_seed(0)),)

def example_targets():
    return {targets}
{loss}'''
MSE_LOSS = '''
def loss_fn(output, targets):
    return nn.functional.mse_loss(output, targets)
'''
KELVIN = "300.0 + 10.0 * torch.randn(64, 1, generator=torch.Generator().manual_seed(1))"


def _kelvin():
    import torch

    return (300.0 + 10.0 * torch.randn(64, 1, generator=torch.Generator().manual_seed(1))).double()


def test_unscaled_targets_are_standardized_on_the_loss_line(lint):
    report = lint(REGRESSION.format(head="", targets=KELVIN, loss=MSE_LOSS), select=["GL207"])
    (finding,) = report.findings
    targets = _kelvin()
    mean, std, rms = float(targets.mean()), float(targets.std()), float(targets.square().mean().sqrt())
    assert finding.severity == Severity.ERROR  # ~300x the output's unit scale
    assert finding.location.line == 16 and finding.location.col == 12  # the mse_loss call
    assert f"RMS {rms:.3g} (mean {mean:.3g}, std {std:.3g})" in finding.message
    assert finding.fix.code == f"return nn.functional.mse_loss(output, (targets - {mean:.4g}) / {std:.4g})"
    assert f"predict {std:.4g} * output + {mean:.4g}" in finding.fix.message
    assert report.evidence["m:target_scale"] == pytest.approx(math.log10(rms), rel=1e-3)


def test_target_scale_thresholds(lint):
    def severities(scale: float):
        targets = f"{scale} * torch.randn(64, 1, generator=torch.Generator().manual_seed(1))"
        return [f.severity for f in lint(REGRESSION.format(head="", targets=targets, loss=MSE_LOSS),
                                         select=["GL207"]).findings]

    assert severities(1.0) == [] and severities(6.0) == []
    assert severities(30.0) == [Severity.WARNING]
    assert severities(300.0) == [Severity.ERROR]


def test_targets_already_matched_by_the_output_scale_pass(lint):
    # The model's own output layer reaches the targets' scale: nothing to standardize.
    source = REGRESSION.format(head=", nn.Linear(1, 1)", targets="30.0 * torch.randn(64, 1)", loss=MSE_LOSS)
    source = source.replace("    torch.manual_seed(0)\n    return nn.Sequential(",
                            "    torch.manual_seed(0)\n    model = nn.Sequential(")
    source = source.replace("nn.Linear(1, 1))\n", "nn.Linear(1, 1))\n"
                            "    nn.init.constant_(model[-1].weight, 300.0)\n    return model\n")
    report = lint(source, select=["GL207"])
    assert report.findings == ()


def test_targets_that_are_not_one_per_output_are_left_alone(lint):
    classes = REGRESSION.format(head="", targets="torch.randint(0, 5, (64,)) * 100", loss="").replace(
        "nn.Linear(32, 1)", "nn.Linear(32, 5)")
    gaussian_head = REGRESSION.format(head="", targets=KELVIN, loss='''
def loss_fn(output, targets):
    mean, raw = output[:, :1], output[:, 1:]
    return nn.functional.gaussian_nll_loss(mean, targets, raw.exp())
''').replace("nn.Linear(32, 1)", "nn.Linear(32, 2)")
    assert lint(classes, select=["GL207"]).findings == ()  # integer class labels
    assert lint(gaussian_head, select=["GL207"]).findings == ()  # two outputs per target


def test_without_a_loss_fn_the_finding_points_at_the_model(lint):
    report = lint(REGRESSION.format(head="", targets=KELVIN, loss=""), select=["GL207"])
    (finding,) = report.findings
    assert finding.fix.code is None and "(targets - " in finding.fix.message
    assert finding.location.line == 7  # build_model's nn.Sequential


def test_targets_standardized_inside_the_loss_pass(lint):
    standardized = REGRESSION.format(head="", targets=KELVIN, loss='''
def loss_fn(output, targets):
    return nn.functional.mse_loss(output, (targets - 300.0) / 10.0)
''')
    report = lint(standardized, select=["GL207"])
    assert report.findings == ()
    assert report.evidence["m:target_scale"] < 0.1  # what the loss compares with has RMS ~1


def test_likelihood_losses_are_not_a_target_scale_problem(lint):
    # Poisson counts of ~300 ask for log-rates of ~5.7: the output need not reach the targets' scale.
    poisson = REGRESSION.format(head="", targets=KELVIN, loss='''
def loss_fn(output, targets):
    return nn.functional.poisson_nll_loss(output, targets, log_input=True)
''')
    assert lint(poisson, select=["GL207"]).findings == ()


def test_targets_still_large_after_the_loss_transforms_them(lint):
    halfway = REGRESSION.format(head="", targets=KELVIN, loss='''
def loss_fn(output, targets):
    return nn.functional.mse_loss(output, targets / 2.0)
''')
    (finding,) = lint(halfway, select=["GL207"]).findings
    assert finding.message.startswith("the regression targets, as loss_fn transforms them, have RMS 1")
    assert finding.fix.code is None
