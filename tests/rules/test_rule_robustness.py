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
from gradlint.overrides import Overrides
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


# -- 2. activations standardized by their batch statistics ------------------------------------------
BATCH_STANDARDIZED = '''
import torch
import torch.nn as nn

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(16, 32)
        self.fc2 = nn.Linear(32, 32{bias})
        self.fc3 = nn.Linear(32, 4)

    def forward(self, x):
        h = self.fc1(x)
        h = (h - h.mean(0)) / (h.std(0{unbiased}) + 1e-5)
        return self.fc3(torch.relu(self.fc2(h)))

def build_model():
    return Net()

def example_inputs():
    return (torch.randn({rows}, 16, generator=torch.Generator().manual_seed(0)),)
'''


def test_batch_standardization_of_one_row_is_nan_not_a_crash(lint):
    """One row: std(0) is NaN (no degrees of freedom), and so is everything after it. fc2 -> fc3
    is a ReLU chain whose measured pre-activation scale is 0 (NaN counts as 0 in the statistics)."""
    report = lint(BATCH_STANDARDIZED.format(bias="", unbiased="", rows=1))
    assert report.error is None
    assert codes(report) == ["GL501", "GL604"]
    gl501 = next(f for f in report.findings if f.code == "GL501")
    assert gl501.message.startswith("NaN first appears in the output of std from finite inputs")


def test_batch_standardization_of_one_row_to_zeros(lint):
    """The biased std of one row is 0, so the standardized features are exactly 0 and fc2 (no
    bias) outputs 0: q = 0 before the ReLU counts as its small-signal limit (slope**2 = 1/2), not
    as a gain of 0 that GL202 would call a vanishing initialization."""
    report = lint(BATCH_STANDARDIZED.format(bias=", bias=False", unbiased=", unbiased=False", rows=1))
    assert report.error is None
    assert codes(report) == []


SATURATED_STACK = '''
import torch.nn as nn

def build_model():
    layers = []
    for _ in range({depth}):
        layer = nn.Linear(32, 32)
        nn.init.normal_(layer.weight, std=100.0)
        layers += [layer, nn.{activation}()]
    return nn.Sequential(*layers, nn.Linear(32, 10))
'''


def test_relu6_saturated_everywhere_has_gain_zero(lint):
    """Pre-activations of RMS ~500 sit above ReLU6's 6 almost everywhere: the measured gain of the
    chain is 0, a real measurement GL202 reports instead of dividing by it."""
    report = lint(SATURATED_STACK.format(depth=4, activation="ReLU6"), select=["GL202"])
    assert report.error is None
    (finding,) = report.findings
    assert "compound a backward gain of 0 in mean square" in finding.message
    assert finding.message.endswith("vanishes entirely (a gain of 0)")


def test_hardtanh_saturated_everywhere_has_slopes_zero(lint):
    """Past +-1 everywhere a hard tanh has slope 0: GL302's split of the gain into the slopes'
    share and the weights' cannot divide by the slopes."""
    report = lint(SATURATED_STACK.format(depth=8, activation="Hardtanh"))
    assert report.error is None
    assert codes(report) == ["GL101", "GL201", "GL301", "GL302"]
    gl302 = next(f for f in report.findings if f.code == "GL302")
    assert "the gradient's mean square shrinks to 0 across them (0x per layer); the activation slopes contribute 0," \
        in gl302.message
    assert gl302.fix.message.startswith("put a normalization layer after each weighted layer")


# -- 3. NaN weights -----------------------------------------------------------------------------------
NAN_WEIGHT = '''
import torch
import torch.nn as nn

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(16, 32)
        self.out = nn.Linear(32, 4)
        self.fc.weight.data[0, 0] = float('nan')

    def forward(self, x):
        return self.out(torch.relu(self.fc(x)))

def build_model():
    return Net()

def configure_optimizers(model):
    return torch.optim.{optimizer}
'''


@pytest.mark.parametrize("optimizer", ["SGD(model.parameters(), lr=0.1, momentum=0.9)",
                                       "AdamW(model.parameters(), lr=1e-3)"])
def test_nan_weight_is_reported_by_gl501_alone(lint, optimizer):
    """GL501 names the parameter; the init rules have no scale to judge in a NaN weight (GL201
    used to report 'weight variance x fan_in is nan'), and GL604 sees the loss it causes."""
    report = lint(NAN_WEIGHT.format(optimizer=optimizer))
    assert report.error is None
    assert codes(report) == ["GL501", "GL604"]
    gl501 = next(f for f in report.findings if f.code == "GL501")
    assert gl501.message == ("fc.weight holds NaN before training starts (1 of 512 entries); "
                             "loss = nan, 4 of 4 parameter gradients non-finite")
    assert gl501.module == "fc"


NAN_EVERYWHERE = '''
import torch
import torch.nn as nn

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(50, 16)
        self.rnn = nn.LSTM(16, 32, batch_first=True)
        self.attn = nn.MultiheadAttention(32, 4, batch_first=True)
        self.norm = nn.LayerNorm(32)
        self.head = nn.Linear(32, 50)
        with torch.no_grad():
            self.rnn.weight_hh_l0[0, 0] = float('nan')
            self.embed.weight[3, 3] = float('inf')

    def forward(self, tokens):
        h = self.rnn(self.embed(tokens))[0]
        return self.head(self.norm(h + self.attn(h, h, h)[0]))

def build_model():
    return Net()

def example_inputs():
    return (torch.arange(48).reshape(4, 12) % 50,)
'''

# In a subprocess: before GL701 skipped non-finite recurrent weights, MKL's eigenvalue routine
# crashed the whole process on them (a segmentation fault, not an exception).
LINT_IN_SUBPROCESS = '''
import json, pathlib, sys, tempfile
from gradlint.discover import Target
from gradlint.engine import Settings, lint_target
from gradlint.overrides import Overrides
from gradlint.registry import all_rules
path = pathlib.Path(tempfile.mkdtemp()) / "model.py"
path.write_text(sys.stdin.read())
report = lint_target(Target(str(path)), Settings(rules=tuple(all_rules())), Overrides())
print(json.dumps({"error": report.error, "findings": [[f.code, f.message] for f in report.findings]}))
'''


def test_non_finite_recurrent_embedding_and_attention_weights():
    result = subprocess.run([sys.executable, "-c", LINT_IN_SUBPROCESS], input=NAN_EVERYWHERE, cwd=ROOT,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout.splitlines()[-1])
    assert report["error"] is None
    assert sorted(code for code, _ in report["findings"]) == ["GL501", "GL604"]
    gl501 = next(message for code, message in report["findings"] if code == "GL501")
    assert gl501.startswith("embed.weight holds Inf before training starts (1 of 800 entries) "
                            "(and 1 more parameter); loss = nan")


# -- 4. complex parameters ---------------------------------------------------------------------------
COMPLEX = '''
import torch
import torch.nn as nn

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.mix = nn.Parameter(torch.randn(8, 8, dtype=torch.cfloat) / 8 ** 0.5)
        self.c1 = nn.Linear(8, 8, dtype=torch.cfloat)
        self.c2 = nn.Linear(8, 8, dtype=torch.cfloat)
        self.fc = nn.Linear(8, 16)
        self.out = nn.Linear(16, 4)

    def forward(self, x):
        z = self.c2(self.c1(x.to(torch.cfloat) @ self.mix))
        return self.out(torch.relu(self.fc(z.real)))

def build_model():
    return Net()

def example_inputs():
    return (torch.randn(8, 8, generator=torch.Generator().manual_seed(0)),)

def configure_optimizers(model):
    return torch.optim.{optimizer}
'''


@pytest.mark.parametrize("optimizer", ["SGD(model.parameters(), lr=0.1, momentum=0.9)",  # GL602's Lanczos
                                       "Adam(model.parameters(), lr=1e-3)"])  # GL603's line search
def test_complex_parameters(lint, optimizer):
    report = lint(COMPLEX.format(optimizer=optimizer))
    assert report.error is None
    assert codes(report) == []
    assert report.evidence["m:first_update_ratio"] > 0  # GL601 measured the real weights' step


# A complex weight and the same numbers as two real weights: the optimizer rules measure a complex
# parameter as the pair of real ones autograd and torch.optim see, so every number must agree.
AS_COMPLEX = '''
        self.z = nn.Parameter(torch.complex(torch.randn(8, 8, generator=g), torch.randn(8, 8, generator=g)) / 3)

    def forward(self, x):
        h = x.to(torch.cfloat) @ self.z
        h = torch.cat([h.real, h.imag], 1)
'''
AS_REAL = '''
        self.a = nn.Parameter(torch.randn(8, 8, generator=g) / 3)
        self.b = nn.Parameter(torch.randn(8, 8, generator=g) / 3)

    def forward(self, x):
        h = torch.cat([x @ self.a, x @ self.b], 1)
'''
PAIRED = '''
import torch
import torch.nn as nn

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.out = nn.Linear(16, 4)
        g = torch.Generator().manual_seed(1){weights}        return self.out(torch.tanh(h))

def build_model():
    return Net()

def example_inputs():
    return (torch.randn(8, 8, generator=torch.Generator().manual_seed(2)) * 3,)

def configure_optimizers(model):
    return torch.optim.{optimizer}
'''


@pytest.mark.parametrize("optimizer,measured", [
    ("SGD(model.parameters(), lr=30.0)", ("m:first_update_ratio", "m:lr_x_curvature")),
    ("Adam(model.parameters(), lr=0.3)", ("m:first_update_ratio", "m:adam_step_curvature")),
])
def test_complex_parameter_measures_as_its_real_pair(lint, optimizer, measured):
    as_complex = lint(PAIRED.format(weights=AS_COMPLEX, optimizer=optimizer), select=["GL60"])
    as_real = lint(PAIRED.format(weights=AS_REAL, optimizer=optimizer), select=["GL60"])
    assert as_complex.error is None and as_real.error is None
    for feature in measured:
        assert as_complex.evidence[feature] == pytest.approx(as_real.evidence[feature], rel=1e-4), feature
    if optimizer.startswith("SGD"):  # lr 30 against a top eigenvalue of ~2: GL602 fires on both
        (complex_602,) = [f for f in as_complex.findings if f.code == "GL602"]
        (real_602,) = [f for f in as_real.findings if f.code == "GL602"]
        assert complex_602.message == real_602.message


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


# -- 6. an optimizer over another model's parameters --------------------------------------------------
def optimizer_over(parameters: str) -> str:
    return f'''
import torch
import torch.nn as nn

class OtherNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(3, 3)
        self.b = nn.Linear(3, 3)

def build_model():
    return nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 4))

def configure_optimizers(model):
    return torch.optim.SGD({parameters}, lr=0.1)
'''


@pytest.mark.parametrize("parameters,count", [
    ("OtherNet().parameters()", 4),
    ("[torch.zeros(3, requires_grad=True)]", 1),
    ("build_model().parameters()", 4),  # a second copy of the model, not the one linted
])
def test_optimizer_over_parameters_that_are_not_the_models(lint, parameters, count):
    report = lint(optimizer_over(parameters))
    assert report.error == ("configure_optimizers() returned an optimizer over parameters that are not the "
                            f"model's (0 of its {count} tensors belong to the model)")


@pytest.mark.parametrize("parameters", [
    "model[2].parameters()",  # a frozen backbone: only the head trains
    "[*model.parameters(), torch.zeros(3, requires_grad=True)]",  # plus a loss's own weight
])
def test_optimizer_over_part_of_the_model_still_lints(lint, parameters):
    source = optimizer_over(parameters).replace("    return torch.optim.SGD", "    model[0].requires_grad_(False)\n"
                                                "    return torch.optim.SGD")
    report = lint(source)
    assert report.error is None
    assert codes(report) == []
    assert report.evidence["m:first_update_ratio"] > 0
