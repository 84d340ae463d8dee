"""Attention rules (GL801-GL802): the scale found wherever it is applied, logit size at init,
fixes that rewrite the user's line, and quiet library attention."""

from __future__ import annotations

import re

import pytest

from gradlint.findings import Severity
from tests.rules._standard_models import ALL as STANDARD_MODELS

ATTENTION = '''
import math
import torch
import torch.nn as nn

class Attention(nn.Module):
    def __init__(self, dim={dim}, heads=2):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.scale = (dim // heads) ** -0.5

    def forward(self, x):
        B, T, D = x.shape
        q, k, v = (t.view(B, T, self.heads, -1).transpose(1, 2) for t in self.qkv(x).chunk(3, dim=-1))
        mask = torch.ones(T, T, dtype=torch.bool).triu(1)
        {body}
        return (attn.softmax(dim=-1) @ v).transpose(1, 2).reshape(B, T, D)

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.blocks = nn.Sequential(Attention(), Attention())

    def forward(self, x):
        return self.blocks(x)

def build_model():
    return Net()

def example_inputs():
    return (torch.randn(4, 24, {dim}, generator=torch.Generator().manual_seed(0)),)
'''

UNSCALED = {
    "matmul": "attn = q @ k.transpose(-2, -1)",
    "einsum": 'attn = torch.einsum("bhqd,bhkd->bhqk", q, k)',
    "bmm": "attn = torch.bmm(q.flatten(0, 1), k.flatten(0, 1).transpose(1, 2)).view(B, self.heads, T, T)",
    "causal-mask": 'attn = (q @ k.transpose(-2, -1)).masked_fill(mask, float("-inf"))',
}
SCALED = {
    "divided": "attn = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])",
    "scaled-query": "attn = (q * self.scale) @ k.transpose(-2, -1)",
    "mask-then-scale": 'attn = (q @ k.transpose(-2, -1)).masked_fill(mask, float("-inf")) * self.scale',
    "scale-then-mask": 'attn = (q @ k.transpose(-2, -1) * self.scale).masked_fill(mask, float("-inf"))',
}


@pytest.mark.parametrize("variant", UNSCALED)
def test_unscaled_attention_is_found(lint, variant):
    report = lint(ATTENTION.format(dim=128, body=UNSCALED[variant]), select=["GL80"])
    (finding,) = report.findings  # two blocks built on one line: merged into one finding
    assert finding.code == "GL801" and finding.location.line == 17
    assert "head dim 64" in finding.message and "1/sqrt(64) = 0.125" in finding.message
    assert "(and 1 more built on this line" in finding.message


@pytest.mark.parametrize("variant", SCALED)
def test_scaled_attention_is_quiet(lint, variant):
    assert lint(ATTENTION.format(dim=128, body=SCALED[variant]), select=["GL80"]).findings == ()


def test_fix_rewrites_the_users_line(lint):
    (finding,) = lint(ATTENTION.format(dim=128, body=UNSCALED["matmul"]), select=["GL801"]).findings
    assert finding.fix.code == "attn = (q @ k.transpose(-2, -1)) * 64 ** -0.5"


def test_logit_size_is_measured_and_drives_the_weight(lint):
    # Collapsed or not, the finding is an info (2 of the corpus's 5 collapsed cases failed to train,
    # BENCHMARKS.md "Severities"); the measured logits set its weight in the risk.
    (finding,) = lint(ATTENTION.format(dim=128, body=UNSCALED["matmul"]), select=["GL801"]).findings
    (milder,) = lint(ATTENTION.format(dim=32, body=UNSCALED["matmul"]), select=["GL801"]).findings
    max_logit = float(re.search(r"max \|logit\| ([0-9.]+)", finding.message).group(1))
    entropy = float(re.search(r"attention entropy ([0-9.]+) x ln\(24\)", finding.message).group(1))
    assert max_logit > 10 and entropy < 0.5
    assert finding.severity == milder.severity == Severity.INFO
    assert finding.weight > milder.weight


def test_small_heads_are_left_to_the_logit_rule(lint):
    # d = 8: the missing factor is only 2.8; with unnormalized inputs the logits are still large.
    source = ATTENTION.format(dim=16, body=UNSCALED["matmul"])
    source = source.replace("return (torch.randn(", "return (10 * torch.randn(")
    report = lint(source, select=["GL80"])
    assert {f.code for f in report.findings} == {"GL802"}


def test_classifier_softmax_is_not_attention(lint):
    source = '''
import torch
import torch.nn as nn

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.randn(64, 10))

    def forward(self, x):
        return (x @ self.w).softmax(-1)

def build_model():
    return Net()

def example_inputs():
    return (torch.randn(8, 5, 64),)
'''
    assert lint(source, select=["GL80"]).findings == ()


def test_logits_too_large_despite_scaling(lint):
    source = ATTENTION.format(dim=128, body=SCALED["divided"])
    source = source.replace("return (torch.randn(", "return (8 * torch.randn(")
    (finding,) = lint(source, select=["GL80"]).findings
    assert finding.code == "GL802" and "max |logit|" in finding.message
    assert "LayerNorm" in finding.fix.message


@pytest.mark.parametrize("name", STANDARD_MODELS)
def test_standard_models_have_no_attention_findings(lint, name):
    # nn.MultiheadAttention is one opaque node: its internal 1/sqrt(d) is correct.
    report = lint(STANDARD_MODELS[name], select=["GL8"])
    assert report.error is None, report.error
    assert report.findings == (), [f.message for f in report.findings]
