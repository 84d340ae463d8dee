"""Recurrent rules (GL7xx): spectral radius per gate block, gradient through time, clipping, and
quiet default recurrent nets."""

from __future__ import annotations

import re

import pytest

from gradlint.findings import Severity
from tests.rules._standard_models import ALL as STANDARD_MODELS

SCALED = '''
import torch
import torch.nn as nn

{clip}

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn = nn.{kind}(8, 32, batch_first=True)
        self.head = nn.Linear(32, 4)
        with torch.no_grad():
            blocks = self.rnn.weight_hh_l0.chunk({blocks})
            nn.init.orthogonal_(blocks[{block}])
            blocks[{block}].mul_({radius})

    def forward(self, x):
        return self.head(self.rnn(x)[0][:, -1])

def build_model():
    return Net()

def example_inputs():
    return (torch.randn(8, 16, 8, generator=torch.Generator().manual_seed(0)),)
'''


def _source(kind="RNN", block=0, radius=2.5, clip=""):
    blocks = {"RNN": 1, "LSTM": 4, "GRU": 3}[kind]
    return SCALED.format(kind=kind, blocks=blocks, block=block, radius=radius, clip=clip)


# -- GL701 recurrent-spectral-radius -------------------------------------------------------------
def test_spectral_radius_is_measured_and_reported(lint):
    (finding,) = lint(_source(radius=2.5), select=["GL701"]).findings
    assert "spectral radius 2.5" in finding.message and finding.module == "rnn"
    assert finding.severity == Severity.ERROR
    assert finding.fix.code == "nn.init.orthogonal_(self.rnn.weight_hh_l0)"


def test_sigmoid_gates_need_radius_above_four(lint):
    # LSTM forget gate (block 1, sigmoid, gamma = 1/4): rho 3 is below 1/gamma, rho 5 above.
    assert lint(_source("LSTM", block=1, radius=3.0), select=["GL701"]).findings == ()
    (finding,) = lint(_source("LSTM", block=1, radius=5.0), select=["GL701"]).findings
    assert "weight_hh_l0 (forget gate)" in finding.message and "= 1.25 > 1" in finding.message
    assert "chunk(4)" in finding.fix.code


def test_tanh_block_of_a_gru_uses_slope_one(lint):
    (finding,) = lint(_source("GRU", block=2, radius=1.5), select=["GL701"]).findings
    assert "(new state)" in finding.message


def test_clipping_lowers_weight_and_severity(lint):
    plain = lint(_source(radius=2.5), select=["GL701"]).findings[0]
    clipped = lint(_source(radius=2.5, clip="gradient_clip_val = 1.0"), select=["GL701"]).findings[0]
    assert clipped.weight == pytest.approx(plain.weight / 2)
    assert clipped.severity == Severity.WARNING and "gradient_clip_val=1" in clipped.message


def test_projected_lstm_composes_the_projection():
    import torch
    import torch.nn as nn

    from gradlint.measure.recurrent import gate_radii

    lstm = nn.LSTM(8, 32, proj_size=8)
    with torch.no_grad():
        lstm.weight_hr_l0.mul_(100.0)
    radii = gate_radii(lstm)
    assert len(radii) == 4 and max(r.radius for r in radii) > 10


# -- GL702 gradient-grows-through-time -----------------------------------------------------------
RELU_RNN = '''
import torch
import torch.nn as nn

{clip}

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn = nn.RNN(8, 32, nonlinearity="relu", batch_first=True)
        self.head = nn.Linear(32, 4)
        with torch.no_grad():
            nn.init.orthogonal_(self.rnn.weight_hh_l0)
            self.rnn.weight_hh_l0.mul_({radius})

    def forward(self, x):
        return self.head(self.rnn(x)[0][:, {read}])

def build_model():
    return Net()

def example_inputs():
    return (torch.randn(8, 16, 8, generator=torch.Generator().manual_seed(0)),)
'''


def test_growth_through_time_is_measured(lint):
    (finding,) = lint(RELU_RNN.format(radius=3.0, read=-1, clip=""), select=["GL702"]).findings
    growth = float(re.search(r"is ([0-9.e+]+)x the one at the last", finding.message).group(1))
    per_step = float(re.search(r"\(([0-9.e+]+)x per step", finding.message).group(1))
    assert growth > 1e3 and per_step == pytest.approx(growth ** (1 / 15), rel=0.01)
    assert "of 16 time steps" in finding.message and finding.module == "rnn"


def test_clipping_halves_the_weight_and_drops_the_fix_code(lint):
    plain = lint(RELU_RNN.format(radius=3.0, read=-1, clip=""), select=["GL702"]).findings[0]
    clipped = lint(RELU_RNN.format(radius=3.0, read=-1, clip="gradient_clip_val = 1.0"), select=["GL702"]).findings[0]
    assert clipped.weight == pytest.approx(plain.weight / 2) and clipped.severity == Severity.WARNING
    assert plain.fix.code.startswith("gradient_clip_val") and clipped.fix.code is None


def test_a_loss_that_ignores_the_last_step_is_not_read_as_explosion(lint):
    # Reading the first output only: later steps get no gradient at all.
    assert lint(RELU_RNN.format(radius=3.0, read=0, clip=""), select=["GL702"]).findings == ()


def test_gradient_through_time_restores_the_model(tmp_path):
    import torch

    from gradlint.discover import Target
    from gradlint.load import load_target
    from gradlint.rule import RuleContext
    from gradlint.measure.recurrent import gradient_through_time

    path = tmp_path / "rnn.py"
    path.write_text(RELU_RNN.format(radius=1.0, read=-1, clip=""))
    spec = load_target(Target(str(path)))
    before = {n: p.detach().clone() for n, p in spec.model.named_parameters()}
    ctx = RuleContext(spec=spec)
    profiles = gradient_through_time(ctx)
    assert list(profiles) == ["rnn"] and len(profiles["rnn"].norms) == 16
    assert ctx.passes == {"forward": 1, "backward": 1}
    assert all(torch.equal(p, before[n]) and p.grad is None for n, p in spec.model.named_parameters())
    assert not spec.model._forward_pre_hooks and not spec.model.rnn._forward_pre_hooks


# -- quiet on default recurrent nets ------------------------------------------------------------------
DEFAULT_RECURRENT = {
    "lstm-lm": '''
import torch
import torch.nn as nn

class LM(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(100, 32)
        self.lstm = nn.LSTM(32, 64, num_layers=2, batch_first=True)
        self.head = nn.Linear(64, 100)

    def forward(self, tokens):
        return self.head(self.lstm(self.embed(tokens))[0])

def build_model():
    return LM()

def example_inputs():
    return (torch.randint(0, 100, (4, 48)),)
''',
    "bidirectional-gru-clipped": '''
import torch
import torch.nn as nn

gradient_clip_val = 5.0

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.gru = nn.GRU(16, 32, bidirectional=True)
        self.head = nn.Linear(64, 5)

    def forward(self, x):
        return self.head(self.gru(x)[0][-1])

def build_model():
    return Net()

def example_inputs():
    return (torch.randn(32, 4, 16),)

def configure_optimizers(model):
    return torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
''',
    "tanh-rnn-default": _source(radius=1.0),
}


@pytest.mark.parametrize("name", [*STANDARD_MODELS, *DEFAULT_RECURRENT])
def test_default_recurrent_nets_have_no_findings(lint, name):
    source = STANDARD_MODELS.get(name) or DEFAULT_RECURRENT[name]
    report = lint(source, select=["GL7"])
    assert report.error is None, report.error
    assert report.findings == (), [f.message for f in report.findings]
