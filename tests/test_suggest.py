"""The learning-rate suggestion (gradlint.suggest): checked against limits known in closed form,
printed in every format, and computed without touching the user's model or optimizer."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn as nn
from click.testing import CliRunner

import gradlint
from gradlint.cli import main
from gradlint.findings import Suggestion

N, D = 64, 8


def quadratic_problem():
    """A least-squares problem: loss = mean((X w - y)^2) has the constant Hessian 2/N X^T X, so
    gradient descent diverges above 2/lambda_max and heavy-ball momentum beta above
    (2 + 2 beta)/lambda_max (Polyak 1964; docs/theory.md)."""
    data = torch.Generator().manual_seed(0)
    inputs = torch.randn(N, D, generator=data) * torch.linspace(0.2, 3.0, D)
    targets = torch.randn(N, 1, generator=data)
    top = torch.linalg.eigvalsh(2 / N * inputs.T @ inputs).max().item()
    return inputs, targets, top


@pytest.mark.parametrize("momentum", [0.0, 0.9])
@pytest.mark.parametrize("configured", [50.0, 0.1])  # times the stable limit: far above it, well below it
def test_the_suggestion_stays_under_the_closed_form_limit_and_near_it(momentum, configured):
    inputs, targets, top = quadratic_problem()
    limit = (2 + 2 * momentum) / top
    torch.manual_seed(0)
    model = nn.Linear(D, 1, bias=False)
    optimizer = torch.optim.SGD(model.parameters(), lr=configured * limit, momentum=momentum)
    suggestion = gradlint.suggest_lr(model, inputs, targets=targets, loss_fn=nn.functional.mse_loss,
                                     optimizer=optimizer)
    assert suggestion.configured_lr == pytest.approx(configured * limit)
    # Under the limit (it trains), and not timid: the grid (2x), the margin (suggest.MARGIN, 2x) and
    # a verification's step down (4x, or straight to the quadratic limit) keep it within 16x.
    assert limit / 16 <= suggestion.lr < limit
    # On the grid of the configured lr times powers of 2.
    assert math.log2(suggestion.lr / suggestion.configured_lr) == pytest.approx(
        round(math.log2(suggestion.lr / suggestion.configured_lr)))
    assert suggestion.risk < 0.3


def test_the_users_model_and_optimizer_are_left_as_they_were():
    inputs, targets, _ = quadratic_problem()
    torch.manual_seed(0)
    model = nn.Linear(D, 1, bias=False)
    optimizer = torch.optim.SGD(model.parameters(), lr=5.0, momentum=0.9)
    before = model.weight.detach().clone()
    groups = [dict(group) for group in optimizer.param_groups]
    gradlint.suggest_lr(model, inputs, targets=targets, loss_fn=nn.functional.mse_loss, optimizer=optimizer)
    assert torch.equal(model.weight, before)
    assert [dict(group) for group in optimizer.param_groups] == groups
    assert not optimizer.state


@pytest.mark.parametrize("make", [lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, weight_decay=1e-2),
                                  lambda p: torch.optim.AdamW(p, lr=1e-3, weight_decay=0.1),
                                  lambda p: torch.optim.Adagrad(p, lr=0.05)], ids=["sgd", "adamw", "adagrad"])
def test_the_first_step_is_linear_in_the_lr_so_scaling_it_is_exact(make):
    """Why the suggestion may scale the measured first step instead of stepping again: the step
    at 8x the lr is 8x the step, up to float32 rounding (the update is read back as the difference
    of two parameters of ~100x its size)."""
    from gradlint.measure.first_step import first_step
    from gradlint.measure.surface import loss_surface
    from gradlint.spec import ModelSpec
    from gradlint.optimizers import describe_optimizer
    from gradlint.suggest import _scaled_optimizer, _scaled_step

    inputs, targets, _ = quadratic_problem()
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(D, 16), nn.Tanh(), nn.Linear(16, 1))
    optimizer = make(model.parameters())
    spec = ModelSpec(target="t", path="t.py", model=model, inputs=(inputs,), targets=targets,
                     loss_fn=nn.functional.mse_loss, optimizer=describe_optimizer(optimizer),
                     optimizer_object=optimizer)
    with loss_surface(spec) as surface:
        measured = first_step(surface, optimizer, spec.optimizer)
        scaled = _scaled_optimizer(optimizer, 8.0)
        stepped = first_step(surface, scaled, describe_optimizer(scaled))
    predicted = _scaled_step(measured, 8.0)
    for a, b in zip(predicted.update, stepped.update):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
    assert [t.update_rms for t in predicted.tensors] == pytest.approx([t.update_rms for t in stepped.tensors], rel=1e-4)


def test_no_suggestion_without_the_whole_risk():
    inputs, targets, _ = quadratic_problem()
    model = nn.Linear(D, 1, bias=False)
    optimizer = torch.optim.SGD(model.parameters(), lr=5.0)
    assert gradlint.suggest_lr(model, inputs, targets=targets, loss_fn=nn.functional.mse_loss, optimizer=optimizer,
                               select=["GL6"]) is None


@pytest.mark.parametrize("suggestion, line", [
    (Suggestion(0.078125, 5.0, None, 0.04, "curvature"),
     "suggested lr: 0.078 (configured 5, 64x too high; bound: curvature)"),
    (Suggestion(0.004, 0.001, None, 0.03, "first-update size"),
     "suggested lr: 0.004 (configured 0.001, 4x headroom; bound: first-update size)"),
    (Suggestion(0.01, 0.01, None, 0.03, "lookahead"),
     "suggested lr: 0.01 (configured 0.01, no more headroom; bound: lookahead)"),
    (Suggestion(5 / 8192, 5.0, None, 0.03, "curvature"),
     "suggested lr: 0.00061 (configured 5, 8192x too high; bound: curvature)"),
    (Suggestion(None, 0.01, None, None, "the risk does not fall with the lr: its causes lie elsewhere"),
     "suggested lr: none (the risk does not fall with the lr: its causes lie elsewhere; configured 0.01)"),
])
def test_the_suggestion_line(suggestion, line):
    assert suggestion.line() == line


QUADRATIC = '''import torch
import torch.nn as nn

N, D = 64, 8
_data = torch.Generator().manual_seed(0)
X = torch.randn(N, D, generator=_data) * torch.linspace(0.2, 3.0, D)
Y = torch.randn(N, 1, generator=_data)


def build_model():
    return nn.Linear(D, 1, bias=False)


def example_inputs():
    return (X,)


def example_targets():
    return Y


def loss_fn(output, targets):
    return nn.functional.mse_loss(output, targets)


def configure_optimizers(model):
    return torch.optim.SGD(model.parameters(), lr=5.0)
'''
LINE = "suggested lr: 0.039 (configured 5, 128x too high; bound: lookahead)"


@pytest.fixture
def quad(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "quad.py").write_text(QUADRATIC)
    (tmp_path / "broken.py").write_text("def build_model(:\n")
    return tmp_path


def run(*args: str):
    result = CliRunner().invoke(main, ["--isolated", "-j", "1", *args])
    return result.exit_code, result.stdout


def test_concise_prints_the_suggestion_under_the_risk(quad):
    code, out = run("quad.py")
    assert code == 1
    lines = out.splitlines()
    assert lines[-2] == f"  {LINE}"
    assert lines[-3].startswith("quad.py::build_model: risk 0.99 (high)")


def test_suggest_lr_prints_only_the_suggestions(quad):
    assert run("--suggest-lr", "quad.py") == (0, f"quad.py::build_model: {LINE}\n")
    assert run("--suggest-lr", "--select", "GL6", "quad.py") == (
        0, "quad.py::build_model: no suggestion (the risk is incomplete: 26 of 30 rules not selected)\n")
    code, out = run("--suggest-lr", "quad.py", "broken.py")
    assert code == 2
    assert out.splitlines()[0] == f"quad.py::build_model: {LINE}"
    assert out.splitlines()[1].startswith("broken.py: error: ")


def test_json_carries_the_suggestion(quad):
    _, out = run("--output-format", "json", "quad.py")
    suggestion = json.loads(out)["models"][0]["suggestion"]
    assert suggestion == {"lr": 0.0390625, "configured_lr": 5.0, "gradient_clip_val": None,
                          "risk": suggestion["risk"], "basis": "lookahead"}
    assert 0 < suggestion["risk"] < 0.3


def test_sarif_and_json_lines_carry_it_too(quad):
    _, out = run("--output-format", "sarif", "quad.py")
    models = json.loads(out)["runs"][0]["properties"]["models"]
    assert models[0]["suggestion"]["lr"] == 0.0390625
    _, out = run("--output-format", "json-lines", "quad.py")
    assert json.loads(out.splitlines()[-1])["suggestion"]["lr"] == 0.0390625
    _, out = run("--output-format", "github", "quad.py")
    notice = next(line for line in out.splitlines() if line.startswith("::notice"))
    assert notice.endswith("%0A  " + LINE)


RECURRENT = '''import torch
import torch.nn as nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn = nn.RNN(8, 64, batch_first=True)
        with torch.no_grad():  # recurrent weights at spectral radius 3: the gradient through time explodes
            weight = self.rnn.weight_hh_l0
            weight.mul_(3.0 / torch.linalg.eigvals(weight).abs().max())
        self.head = nn.Linear(64, 4)

    def forward(self, x):
        return self.head(self.rnn(x)[0])


def build_model():
    return Net()


_data = torch.Generator().manual_seed(0)
X = torch.randn(16, 32, 8, generator=_data)
Y = torch.randn(16, 32, 4, generator=_data)


def example_inputs():
    return (X,)


def example_targets():
    return Y


def loss_fn(output, targets):
    return nn.functional.mse_loss(output, targets)


def configure_optimizers(model):
    return torch.optim.SGD(model.parameters(), lr=0.3)
'''


def test_a_recurrent_net_without_clipping_gets_a_clip_that_keeps_its_lr(tmp_path):
    from gradlint.discover import Target
    from gradlint.engine import Settings, lint_target
    from gradlint.overrides import Overrides
    from gradlint.registry import all_rules

    path = tmp_path / "rnn.py"
    path.write_text(RECURRENT)
    report = lint_target(Target(str(path)), Settings(rules=tuple(all_rules())), Overrides())
    suggestion = report.suggestion
    assert report.risk >= 0.3
    assert suggestion.clip_suggested and suggestion.lr == suggestion.configured_lr == 0.3
    assert 0 < suggestion.gradient_clip_val < math.inf and suggestion.risk < 0.3
    assert suggestion.line() == (f"suggested lr: 0.3 with gradient_clip_val = {suggestion.gradient_clip_val:g} "
                                 "(configured 0.3 without clipping; clipping keeps the configured lr)")


def test_a_suggestion_that_fails_leaves_the_report_standing(tmp_path, monkeypatch):
    from gradlint import suggest
    from gradlint.discover import Target
    from gradlint.engine import Settings, lint_target
    from gradlint.overrides import Overrides
    from gradlint.registry import all_rules

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(suggest, "suggest", broken)
    path = tmp_path / "quad.py"
    path.write_text(QUADRATIC)
    report = lint_target(Target(str(path)), Settings(rules=tuple(all_rules())), Overrides())
    assert report.suggestion is None and report.risk > 0.9 and report.error is None
    assert "no lr suggestion: RuntimeError: boom" in report.assumptions


def test_the_suggestion_can_be_skipped_and_the_pytest_gate_skips_it():
    from gradlint.testing import assert_trainable

    inputs, targets, _ = quadratic_problem()
    model = nn.Linear(D, 1, bias=False)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
    options = dict(targets=targets, loss_fn=nn.functional.mse_loss, optimizer=optimizer)
    assert gradlint.check(model, inputs, **options).suggestion is not None
    assert gradlint.check(model, inputs, suggest_lr=False, **options).suggestion is None
    assert assert_trainable(model, inputs, **options).suggestion is None
    assert assert_trainable(model, inputs, suggest_lr=True, **options).suggestion is not None
