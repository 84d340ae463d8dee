"""Normalization rules (GL4xx): measured numbers, thresholds, optimizer dependence, quiet standard models."""

from __future__ import annotations

import re

import pytest

from gradlint.findings import Severity
from tests.rules._standard_models import ALL as STANDARD_MODELS


def encoder(layers: int, norm_first: bool, final_norm: bool, lr: float | None = None) -> str:
    """A tiny nn.TransformerEncoder language model with the given norm placement and Adam lr."""
    final = ", norm=nn.LayerNorm(16)" if final_norm else ""
    optimizer = f'''
def configure_optimizers(model):
    return torch.optim.Adam(model.parameters(), lr={lr})
''' if lr is not None else ""
    return f'''
import torch
import torch.nn as nn

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(16, 16)
        layer = nn.TransformerEncoderLayer(16, 2, dim_feedforward=32, dropout=0.0, batch_first=True,
                                           norm_first={norm_first})
        self.encoder = nn.TransformerEncoder(layer, num_layers={layers}{final}, enable_nested_tensor=False)
        self.head = nn.Linear(16, 16)

    def forward(self, tokens):
        return self.head(self.encoder(self.embed(tokens)))

def build_model():
    return Net()

def example_inputs():
    return (torch.randint(0, 16, (2, 6)),)
{optimizer}'''


def batchnorm_stack(depth: int) -> str:
    return f'''
import torch
import torch.nn as nn

def build_model():
    layers = [nn.Linear(16, 32)]
    for _ in range({depth}):
        layers += [nn.Linear(32, 32), nn.BatchNorm1d(32), nn.ReLU()]
    return nn.Sequential(*layers, nn.Linear(32, 10))

def example_inputs():
    return (torch.randn(64, 16),)
'''


BATCHNORM1D_ONE_SAMPLE = '''
import torch
import torch.nn as nn

def build_model():
    return nn.Sequential(nn.Linear(8, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 2))

def example_inputs():
    return (torch.randn(1, 8),)
'''


def only(report, code):
    assert report.error is None, report.error
    return [f for f in report.findings if f.code == code]


def test_batchnorm_batch_one_is_static_and_reported_without_a_forward(lint):
    # BatchNorm1d on a (1, C) batch raises in training: only a static rule can report it, and
    # it does because selecting it alone runs no forward pass.
    [finding] = only(lint(BATCHNORM1D_ONE_SAMPLE, select=["GL401"]), "GL401")
    assert finding.severity is Severity.ERROR
    assert "1 sample" in finding.message
    assert finding.fix.code == "model[1] = nn.GroupNorm(16, 16)"


@pytest.mark.parametrize("lr,severity", [(1e-3, Severity.INFO), (3e-3, Severity.WARNING), (5e-3, Severity.ERROR)])
def test_post_ln_severity_follows_the_learning_rate(lint, lr, severity):
    [finding] = only(lint(encoder(6, norm_first=False, final_norm=False, lr=lr), select=["GL402"]), "GL402")
    assert finding.severity is severity
    assert finding.message.startswith("6 Post-LN blocks")
    assert "norm_first=True" in finding.fix.code and "norm=nn.LayerNorm(16)" in finding.fix.code


def test_post_ln_weight_grows_with_learning_rate(lint):
    low, high = (only(lint(encoder(6, False, False, lr=lr), select=["GL402"]), "GL402")[0] for lr in (1e-3, 5e-3))
    assert high.weight > low.weight


def test_post_ln_shallow_stack_is_quiet(lint):
    assert only(lint(encoder(5, norm_first=False, final_norm=False, lr=5e-3), select=["GL402"]), "GL402") == []


def test_pre_ln_final_norm_is_not_mistaken_for_post_ln(lint):
    assert only(lint(encoder(8, norm_first=True, final_norm=True, lr=5e-3), select=["GL402"]), "GL402") == []


def test_pre_ln_missing_final_norm_reports_the_stream_scale(lint):
    [finding] = only(lint(encoder(3, norm_first=True, final_norm=False), select=["GL403"]), "GL403")
    assert re.search(r"Pre-LN stack of 6 residual sublayers feeds head without a final norm: "
                     r"the stream reaches it at RMS [0-9.]+", finding.message)
    assert finding.module == "encoder"
    assert "norm=nn.LayerNorm(16)" in finding.fix.code


def test_single_pre_ln_layer_is_quiet(lint):
    assert only(lint(encoder(1, norm_first=True, final_norm=False), select=["GL403"]), "GL403") == []


def test_batchnorm_without_residual_measures_gradient_growth(lint):
    [finding] = only(lint(batchnorm_stack(20), select=["GL404"]), "GL404")
    per_layer = float(re.search(r"grows ([0-9.]+)x per layer backward", finding.message).group(1))
    assert 1.2 < per_layer < 2.0  # Yang et al. 2019: pi/(pi-1) = 1.47 for ReLU
    assert "mean-field prediction" in finding.message


def test_batchnorm_without_residual_needs_a_deep_stack(lint):
    assert only(lint(batchnorm_stack(5), select=["GL404"]), "GL404") == []


@pytest.mark.parametrize("name", sorted(STANDARD_MODELS))
def test_standard_models_have_no_norm_findings(lint, name):
    report = lint(STANDARD_MODELS[name], select=["GL4"])
    assert report.error is None, report.error
    assert [f.message for f in report.findings] == []


def test_post_ln_counts_a_bert_layer_once(lint):
    # BERT's two Post-LN norms per layer sit in two submodules (attention.output.LayerNorm and
    # output.LayerNorm): a 12-layer BERT is 12 blocks, not 24, and is compared with 12-block stacks.
    source = '''
import torch
from transformers import BertConfig, BertModel

def build_model():
    return BertModel(BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=12, num_attention_heads=2,
                                intermediate_size=32, max_position_embeddings=16))

def example_inputs():
    return (torch.randint(0, 50, (2, 8)),)

def configure_optimizers(model):
    return torch.optim.Adam(model.parameters(), lr=3e-3)
'''
    [finding] = only(lint(source, select=["GL402"]), "GL402")
    assert finding.message.startswith("12 Post-LN blocks (x = LayerNorm(x + f(x)), first "
                                      "encoder.layer.0.attention.output.LayerNorm)")
    assert "1x the lr ~0.003 at which 12-block Post-LN stacks failed" in finding.message
