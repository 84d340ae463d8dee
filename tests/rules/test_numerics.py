"""Numerics rules (GL851-GL853): what counts as guarded, the measured magnitudes, fixes that
rewrite the user's line, and quiet standard models."""

from __future__ import annotations

import pytest

from gradlint.findings import Severity
from tests.rules._standard_models import ALL as STANDARD_MODELS

FORWARD = '''
import torch
import torch.nn as nn
import torch.nn.functional as F

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(16, 32)
        self.softmax = nn.Softmax(dim=-1)

    def forward(self, x):
        h = self.fc(x) * {gain}
        {body}
        return out

def build_model():
    return Net()

def example_inputs():
    return (torch.randn(8, 16, generator=torch.Generator().manual_seed(0)),)
'''


def _lint(lint, body: str, code: str, gain: float = 1.0):
    report = lint(FORWARD.format(body=body, gain=gain), select=[code])
    assert report.error is None, report.error
    return report.findings


# -- GL851 log-of-softmax ------------------------------------------------------------------------
@pytest.mark.parametrize("body,fix", [
    ("out = torch.log(F.softmax(h, dim=-1))", "out = F.log_softmax(h, dim=-1)"),
    ("out = h.softmax(-1).log()", "out = h.log_softmax(-1)"),
    ("out = torch.log(self.softmax(h))", "out = torch.log_softmax(h, dim=-1)"),
    ("out = torch.log(torch.softmax(h, -1) + 1e-9)", "out = torch.log_softmax(h, -1)"),
])
def test_log_of_softmax_is_found_and_rewritten(lint, body, fix):
    (finding,) = _lint(lint, body, "GL851")
    assert finding.location.line == 14 and finding.fix.code == fix
    assert ("epsilon" in finding.message) == ("1e-9" in body)


@pytest.mark.parametrize("body", [
    "out = F.log_softmax(h, dim=-1)",
    "out = torch.log(1 - torch.softmax(h, -1))",  # log(1 - p) is another quantity
    "out = torch.log(torch.sigmoid(h))",
])
def test_other_logs_are_quiet(lint, body):
    assert _lint(lint, body, "GL851") == ()


def test_log_of_softmax_weight_grows_with_the_logits(lint):
    small = _lint(lint, "out = torch.log(F.softmax(h, dim=-1))", "GL851")[0]
    large = _lint(lint, "out = torch.log(F.softmax(h, dim=-1))", "GL851", gain=20.0)[0]
    assert small.weight < large.weight <= 0.75


# -- GL852 division-by-norm-without-eps ----------------------------------------------------------
@pytest.mark.parametrize("body,fix", [
    ("out = h / h.norm(dim=-1, keepdim=True)", "out = h / h.norm(dim=-1, keepdim=True).clamp_min(1e-6)"),
    ("out = h / torch.sqrt(h.var(-1, keepdim=True))", "out = h / torch.sqrt(h.var(-1, keepdim=True)).clamp_min(1e-6)"),
    ("out = h / (h - h.mean()).std()", "out = h / (h - h.mean()).std().clamp_min(1e-6)"),
    ("out = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True))",
     "out = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + 1e-6)"),
])
def test_unguarded_division_is_found_and_rewritten(lint, body, fix):
    (finding,) = _lint(lint, body, "GL852")
    assert finding.location.line == 14 and finding.fix.code == fix
    assert finding.severity == Severity.WARNING


@pytest.mark.parametrize("body", [
    "out = h / (h.norm(dim=-1, keepdim=True) + 1e-6)",
    "out = h / h.norm(dim=-1, keepdim=True).clamp(min=1e-6)",
    "out = h / torch.sqrt(h.var(-1, keepdim=True) + 1e-5)",
    "out = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + 1e-6)",
    "out = F.normalize(h, dim=-1)",
    "out = h / torch.tensor(32.0).sqrt()",  # a constant divisor
    "out = h / 8.0",
])
def test_guarded_or_constant_divisions_are_quiet(lint, body):
    assert _lint(lint, body, "GL852") == ()


def test_a_zero_row_already_nan_is_an_error(lint):
    (finding,) = _lint(lint, "z = h * 0\n        out = z / z.norm(dim=-1, keepdim=True)", "GL852")
    assert finding.severity == Severity.ERROR and finding.weight == pytest.approx(0.9)


SPARSE_INPUT = '''
import torch
import torch.nn as nn

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear({width}, 4)

    def forward(self, x):
        return self.fc(x / x.norm(dim=1, keepdim=True))

def build_model():
    return Net()

def example_inputs():
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(32, {width}, generator=g) < {present}).float()
    x[x.sum(1) == 0, 0] = 1.0  # no empty row in the example batch itself
    return (x,)
'''


def test_sparse_input_makes_a_zero_row_likely(lint):
    # 20% of 16 entries present: a row is empty with probability 0.8^16 = 2.8% (independent
    # entries), so 32 rows x 300 steps almost surely meet one.
    report = lint(SPARSE_INPUT.format(width=16, present=0.2), select=["GL852"])
    (finding,) = report.findings
    assert finding.severity == Severity.ERROR and finding.weight == pytest.approx(0.9)
    zeros = float(finding.message.split("; ")[1].split("%")[0]) / 100
    assert "so a row of 16 is all zero with probability ~" in finding.message
    assert zeros == pytest.approx(0.8, abs=0.05)


def test_dense_input_keeps_the_base_weight(lint):
    # Half the entries present over 64 columns: 0.5^64 per row, negligible over the horizon.
    report = lint(SPARSE_INPUT.format(width=64, present=0.5), select=["GL852"])
    (finding,) = report.findings
    assert finding.severity == Severity.WARNING and finding.weight == pytest.approx(0.2)
    assert "probability" not in finding.message


# -- GL853 exp-of-unbounded-input ----------------------------------------------------------------
def test_exp_of_a_large_unbounded_input(lint):
    (finding,) = _lint(lint, "out = torch.exp(h)", "GL853", gain=30.0)
    assert finding.fix.code == "out = torch.exp(h.clamp(max=10))"
    assert "float16 above 11.09" in finding.message and finding.severity == Severity.WARNING


def test_exp_overflowing_float32_is_an_error(lint):
    (finding,) = _lint(lint, "out = torch.exp(h)", "GL853", gain=200.0)
    assert finding.severity == Severity.ERROR and finding.weight == pytest.approx(0.9)


@pytest.mark.parametrize("body", [
    "out = torch.exp(h)",  # small exponents at init: below the float16 limit
])
def test_exp_of_small_input_is_quiet(lint, body):
    assert _lint(lint, body, "GL853") == ()


@pytest.mark.parametrize("body", [
    "out = torch.exp(h - h.amax(-1, keepdim=True))",
    "out = torch.exp(h - h.max(-1, keepdim=True).values)",
    "out = torch.exp(h.clamp(max=10))",
    "out = torch.exp(-F.softplus(h))",
])
def test_bounded_exponents_are_quiet(lint, body):
    assert _lint(lint, body, "GL853", gain=30.0) == ()


@pytest.mark.parametrize("name", STANDARD_MODELS)
def test_standard_models_have_no_numerics_findings(lint, name):
    report = lint(STANDARD_MODELS[name], select=["GL85"])
    assert report.error is None, report.error
    assert report.findings == (), [f.message for f in report.findings]
