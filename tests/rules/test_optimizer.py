"""Optimizer rules (GL6xx) and the optimizer measurements (gradlint.measure): measured numbers, bounds, clipping, the model
and optimizer left as found, fixes that hold up, and quiet standard training setups."""

from __future__ import annotations

import math
import re

import pytest

from gradlint.findings import Severity
from gradlint.rules.optimizer.lookahead_diverges import MAX_DECADES
from gradlint.spec import OptimizerInfo
from tests.rules._standard_models import ALL as STANDARD_MODELS

MLP = '''
import torch
import torch.nn as nn

def build_model():
    return nn.Sequential(nn.Linear(256, 64), nn.ReLU(), nn.Linear(64, 10))

def example_inputs():
    return (torch.randn(32, 256),)

def configure_optimizers(model):
    return torch.optim.{optimizer}
{extra}
'''

TANH_NET = '''
import torch
import torch.nn as nn

def build_model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(32, 64), nn.Tanh(), nn.Linear(64, 10))

def example_inputs():
    return (torch.randn(16, 32, generator=torch.Generator().manual_seed(0)) * 3,)

def configure_optimizers(model):
    return torch.optim.SGD(model.parameters(), lr={lr})
'''

# The training setups the issue names as healthy, beyond the shared standard models.
HEALTHY_SETUPS = {
    "adamw-mlp": MLP.format(optimizer="AdamW(model.parameters(), lr=1e-3)", extra=""),
    "sgd-cnn-bn": '''
import torch
import torch.nn as nn

def build_model():
    return nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
                         nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10))

def example_inputs():
    return (torch.randn(16, 3, 16, 16),)

def configure_optimizers(model):
    return torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
''',
    "lstm-sgd-clipped": '''
import torch
import torch.nn as nn

gradient_clip_val = 1.0

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(8, 64, batch_first=True)
        self.head = nn.Linear(64, 4)

    def forward(self, x):
        return self.head(self.lstm(x)[0][:, -1])

def build_model():
    return Net()

def example_inputs():
    return (torch.randn(8, 16, 8),)

def configure_optimizers(model):
    return torch.optim.SGD(model.parameters(), lr=0.5)
''',
}


def _number_after(text: str, prefix: str) -> float:
    return float(re.search(re.escape(prefix) + r"\s*([-0-9.e+]+)", text).group(1))


# -- GL601 first-update-too-large ----------------------------------------------------------------
def test_adam_first_update_ratio_is_lr_over_weight_rms(lint):
    # Adam's first step is lr * sign(g): the ratio is lr / RMS(W) = lr * sqrt(3 * 256) for default init.
    report = lint(MLP.format(optimizer="Adam(model.parameters(), lr=0.1)", extra=""), select=["GL601"])
    (finding,) = report.findings
    ratio = _number_after(finding.message, "by")
    assert ratio == pytest.approx(0.1 * math.sqrt(3 * 256), rel=0.1)
    assert finding.module == "0" and finding.severity == Severity.ERROR
    assert "lr=0.003" in finding.fix.code  # 0.1 * 0.1 / 2.77 = 3.6e-3, rounded down


def test_first_update_ratio_boundary(lint):
    below = lint(MLP.format(optimizer="Adam(model.parameters(), lr=3e-3)", extra=""), select=["GL601"])
    above = lint(MLP.format(optimizer="Adam(model.parameters(), lr=5e-3)", extra=""), select=["GL601"])
    assert below.findings == ()  # 3e-3 * 27.7 = 0.083
    assert [f.severity for f in above.findings] == [Severity.WARNING]  # 0.14


def test_clipping_shrinks_the_sgd_update_and_says_so(lint):
    source = MLP.format(optimizer="SGD(model.parameters(), lr=20.0)", extra="{clip}")
    unclipped = lint(source.format(clip=""), select=["GL601"])
    clipped = lint(source.format(clip="gradient_clip_val = 0.01"), select=["GL601"])
    assert unclipped.findings and unclipped.findings[0].weight > 0.5
    assert clipped.findings == () or "gradient_clip_val=0.01 already scales" in clipped.findings[0].message


def test_clipping_does_not_shrink_adam_and_says_so(lint):
    report = lint(MLP.format(optimizer="Adam(model.parameters(), lr=0.1)", extra="gradient_clip_val = 1e-3"),
                  select=["GL601"])
    (finding,) = report.findings
    assert "does not shrink it" in finding.message
    assert _number_after(finding.message, "by") == pytest.approx(0.1 * math.sqrt(3 * 256), rel=0.1)


def test_zero_initialized_weights_are_exempt(lint):
    source = MLP.format(optimizer="Adam(model.parameters(), lr=1e-3)", extra='''
_build = build_model
def build_model():
    model = _build()
    nn.init.zeros_(model[2].weight)  # zero-init head, as Fixup and many classifiers do
    return model
''')
    assert lint(source, select=["GL601"]).findings == ()


# -- GL602 lr-exceeds-curvature-bound ------------------------------------------------------------
def test_stability_bounds():
    from gradlint.rules.optimizer.lr_exceeds_curvature_bound import stability_bound

    assert stability_bound(OptimizerInfo("SGD", 0.1)) == 2
    assert stability_bound(OptimizerInfo("SGD", 0.1, momentum=0.9)) == pytest.approx(3.8)
    assert stability_bound(OptimizerInfo("SGD", 0.1, momentum=0.9, nesterov=True)) == pytest.approx(3.8 / 2.8)


def _top_eigenvalue(tmp_path, source: str) -> float:
    from gradlint.measure.hessian import top_eigenvalue
    from gradlint.measure.surface import loss_surface
    from gradlint.discover import Target
    from gradlint.load import load_target

    path = tmp_path / "net.py"
    path.write_text(source)
    spec = load_target(Target(str(path)))
    with loss_surface(spec) as surface:
        return top_eigenvalue(surface, 30).value


def test_lr_bound_fires_just_above_two_over_lambda(lint, tmp_path):
    eigenvalue = _top_eigenvalue(tmp_path, TANH_NET.format(lr=0.1))
    below = lint(TANH_NET.format(lr=0.9 * 2 / eigenvalue), select=["GL602"])
    above = lint(TANH_NET.format(lr=1.3 * 2 / eigenvalue), select=["GL602"])
    far = lint(TANH_NET.format(lr=10 * 2 / eigenvalue), select=["GL602"])
    assert below.findings == ()
    (finding,) = above.findings
    assert finding.severity == Severity.WARNING and finding.location.line == 13
    # Lanczos from the gradient is a lower bound that converges from below: 10 iterations by default.
    assert 0.85 * eigenvalue <= _number_after(finding.message, "top Hessian eigenvalue") <= 1.001 * eigenvalue
    assert far.findings[0].severity == Severity.ERROR and far.findings[0].weight > finding.weight
    assert above.passes["backward"] > 3  # the Hessian-vector products are counted


def test_top_eigenvalue_of_a_quadratic_is_exact(tmp_path):
    # Linear regression with MSE: H = 2/(N*k) X^T X per output, whose top eigenvalue we know.
    import torch

    source = '''
import torch
import torch.nn as nn

def build_model():
    return nn.Linear(6, 1, bias=False)

def example_inputs():
    return (torch.randn(40, 6, generator=torch.Generator().manual_seed(3)),)

def example_targets():
    return torch.zeros(40, 1)
'''
    inputs = torch.randn(40, 6, generator=torch.Generator().manual_seed(3))
    expected = float(torch.linalg.eigvalsh(2 / 40 * inputs.T @ inputs).max())
    assert _top_eigenvalue(tmp_path, source) == pytest.approx(expected, rel=1e-3)


def test_clipping_that_contains_the_jump_silences_the_bound(lint, tmp_path):
    eigenvalue = _top_eigenvalue(tmp_path, TANH_NET.format(lr=0.1))
    source = TANH_NET.format(lr=3 * 2 / eigenvalue)
    assert lint(source, select=["GL602"]).findings
    assert lint(source + "\ngradient_clip_val = 1e-3\n", select=["GL602"]).findings == ()


# -- GL603 first-step-overshoots -----------------------------------------------------------------
ADAM_MLP = '''
import torch
import torch.nn as nn

def build_model():
    return nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 10))

def example_inputs():
    return (torch.randn(32, 784),)

def configure_optimizers(model):
    return torch.optim.Adam(model.parameters(), lr={lr})
'''


def test_overshoot_fix_holds_up(lint):
    report = lint(ADAM_MLP.format(lr=0.1), select=["GL603"])
    (finding,) = report.findings
    assert finding.location.line == 12
    assert _number_after(finding.message, "lr x curvature =") > 2  # the loss rose: past the edge of stability
    suggested = re.search(r"lr=([0-9.e-]+)", finding.fix.code).group(1)
    assert lint(ADAM_MLP.format(lr=suggested), select=["GL603"]).findings == ()


def test_overshoot_ignores_non_adaptive_optimizers(lint):
    source = ADAM_MLP.format(lr=0.1).replace("torch.optim.Adam", "torch.optim.SGD")
    assert lint(source, select=["GL603"]).findings == ()


# -- GL604 lookahead-diverges ------------------------------------------------------------------------
def test_lookahead_growth_is_the_loss_rising_above_its_first_value():
    from gradlint.rules.optimizer.lookahead_diverges import growth, growth_decades

    assert growth([1.0, 0.5, -3.0], [1.0, 1.0, 1.0]) == (True, 1.0, 1.0)  # falling below 0 is progress
    assert growth([1.0, 12.0], [1.0, 2.0]) == (True, 12.0, 2.0)
    assert growth([-1.0, 5.0], [1.0, 1.0]) == (True, 1.0, 1.0)  # no ratio from a first loss <= 0
    assert growth([1.0, math.nan], [1.0, 1.0])[0] is False
    assert growth_decades([1.0, math.inf], [1.0, 1.0]) == 3.0  # as far as the feature goes
    assert growth_decades([1.0, 1e6], [1.0, 1.0]) == 3.0
    assert growth_decades([1.0, 100.0], [1.0, 1e3]) == pytest.approx(2.0)
    assert growth_decades([1.0, 0.5], [1.0, 1e4]) == pytest.approx(2.0)  # the gradient counts from 100x


# Poisson NLL on log-rates: exp(z) - y z starts near 1 and falls below 0 (to 5 - 5 ln 5 = -3.05 at
# the optimum for counts of 5). A loss that falls to -3 is not a 3x growth.
POISSON = '''
import torch
import torch.nn as nn

def build_model():
    return nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 1))

def example_inputs():
    return (torch.randn(32, 8, generator=torch.Generator().manual_seed(0)),)

def example_targets():
    return torch.full((32, 1), 5.0)

def loss_fn(output, targets):
    return nn.functional.poisson_nll_loss(output, targets, log_input=True)

def configure_optimizers(model):
    return torch.optim.SGD(model.parameters(), lr=0.05)
'''


def test_lookahead_ignores_a_loss_falling_below_zero(lint):
    report = lint(POISSON, select=["GL604"])
    assert report.findings == ()
    assert report.evidence["m:lookahead_growth_20"] == report.evidence["m:resampled_growth_60"] == 0.0


# Linear regression onto zeros, every row the same unit vector e1 (so a batch resampled from its rows
# is the same batch, and the arithmetic stays exact): the loss is w1^2, its curvature 2, so SGD at lr
# 1.075 multiplies w1 by 1 - 2.15 = -1.15 and the loss by 1.3225 every step: 3.1x after 4 steps,
# 202x after 19, 1.5e7x after 59 (past the features' cap of 3 decades).
SLOW_DIVERGENCE = '''
import torch
import torch.nn as nn

def build_model():
    return nn.Linear(4, 1, bias=False)

def example_inputs():
    return (torch.eye(4)[:1].repeat(32, 1),)

def example_targets():
    return torch.zeros(32, 1)

def loss_fn(output, targets):
    return nn.functional.mse_loss(output, targets)

def configure_optimizers(model):
    return torch.optim.SGD(model.parameters(), lr=1.075)
'''


def test_lookahead_sees_a_divergence_after_step_five_and_thorough_keeps_the_features(tmp_path):
    from gradlint.discover import Target
    from gradlint.engine import Settings, lint_target
    from gradlint.overrides import Overrides
    from gradlint.registry import rule_by_code

    path = tmp_path / "slow.py"
    path.write_text(SLOW_DIVERGENCE)
    reports = [lint_target(Target(str(path)), Settings(rules=(rule_by_code("GL604"),), thorough=thorough), Overrides())
               for thorough in (False, True)]
    for report in reports:
        assert report.evidence["m:lookahead_growth"] == pytest.approx(4 * math.log10(1.3225), rel=1e-3)
        assert report.evidence["m:lookahead_growth_20"] == pytest.approx(19 * math.log10(1.3225), rel=1e-3)
        assert report.evidence["m:resampled_growth_60"] == MAX_DECADES  # rows all alike: the same steps, 60 of them
    default, thorough = (report.findings[0] for report in reports)
    assert default.severity == Severity.ERROR
    assert default.message.startswith("20 SGD(lr=1.075) steps on the example batch raise the loss to")
    assert _number_after(default.message, "raise the loss to") == pytest.approx(1.3225 ** 19, rel=1e-2)
    assert thorough.message.startswith("120 SGD(lr=1.075) steps")


def test_lookahead_steps_fit_the_flop_budget():
    from gradlint.measure.lookahead import MIN_STEPS, affordable_steps

    assert affordable_steps(60, 1e9, 80e9) == 60
    assert affordable_steps(60, 2e9, 80e9) == 40
    assert affordable_steps(60, 70e9, 80e9) == MIN_STEPS == 5
    assert affordable_steps(60, 0.0, 80e9) == 60  # nothing counted: no reason to cut


def test_a_model_over_the_flop_budget_runs_fewer_steps_and_says_so(tmp_path, monkeypatch):
    from gradlint.discover import Target
    from gradlint.engine import Settings, lint_target
    from gradlint.overrides import Overrides
    from gradlint.registry import rule_by_code
    from gradlint.rules.optimizer import lookahead_diverges

    monkeypatch.setattr(lookahead_diverges, "FLOP_BUDGET", 1.0)  # any real step costs more
    path = tmp_path / "slow.py"
    path.write_text(SLOW_DIVERGENCE)
    default, thorough = (lint_target(Target(str(path)), Settings(rules=(rule_by_code("GL604"),), thorough=flag),
                                     Overrides()) for flag in (False, True))
    five_steps = 4 * math.log10(1.3225)  # every window is measured over the 5 steps that ran
    assert [default.evidence[f] for f in ("m:lookahead_growth", "m:lookahead_growth_20", "m:resampled_growth_60")] \
        == pytest.approx([five_steps] * 3, rel=1e-3)
    assert default.findings[0].severity == Severity.WARNING and default.findings[0].message.startswith("5 SGD(lr=1.075) steps")
    # the shared probe's pass and 5 steps of each lookahead (the rows are all alike: both see one batch)
    assert default.passes == {"forward": 1 + 5 + 5, "backward": 1 + 5 + 5}
    notes = [a for a in default.assumptions if a.startswith("lookahead:")]
    assert len(notes) == 1 and notes[0].startswith(
        "lookahead: GL604 ran 5 of its 20 steps on the example batch and 5 of its 60 steps on rows resampled from "
        "the example batch, as one step of this model costs ")
    assert notes[0].endswith("GFLOP against a budget of 1e-09 GFLOP a run; --thorough runs 120")
    assert thorough.findings[0].message.startswith("120 SGD(lr=1.075) steps")  # --thorough spends what it takes
    assert not [a for a in thorough.assumptions if a.startswith("lookahead:")]


# SGD with momentum 0.99 at lr 0.2 on a small ReLU regression: on the example batch repeated, the
# heavy-ball iterate settles; on batches drawn from its rows, 60 steps of gradient noise add up and
# the loss grows ~13x. Momentum 0.9 at the same lr stays quiet either way.
HEAVY_MOMENTUM = '''
import torch
import torch.nn as nn

def build_model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 1))

def example_inputs():
    return (torch.randn(32, 16, generator=torch.Generator().manual_seed(0)),)

def example_targets():
    x = example_inputs()[0]
    return torch.tanh(x @ torch.randn(16, 1, generator=torch.Generator().manual_seed(1)))

def loss_fn(output, targets):
    return nn.functional.mse_loss(output, targets)

def configure_optimizers(model):
    return torch.optim.SGD(model.parameters(), lr=0.2, momentum=0.99)
'''


def test_lookahead_resamples_the_batch_rows_so_gradient_noise_shows(lint):
    heavy = lint(HEAVY_MOMENTUM, select=["GL604"])
    assert [f.code for f in heavy.findings] == ["GL604"]
    assert heavy.findings[0].message.startswith("60 SGD(lr=0.2, momentum=0.99) steps on rows resampled from the "
                                                "example batch raise the loss to ")
    assert heavy.evidence["m:resampled_growth_60"] > 1.0  # 10x
    assert heavy.evidence["m:lookahead_growth_20"] == 0.0  # on the example batch repeated: nothing to see
    assert heavy.passes == {"forward": 1 + 20 + 60, "backward": 1 + 20 + 60}  # the probe, then each run
    twin = lint(HEAVY_MOMENTUM.replace("momentum=0.99", "momentum=0.9"), select=["GL604"])
    assert twin.findings == ()
    assert twin.evidence["m:resampled_growth_60"] == twin.evidence["m:lookahead_growth_20"] == 0.0


def test_lookahead_repeats_a_batch_whose_tensors_disagree_on_their_rows(lint):
    # A sequence-first input, (1 sequence, 32 steps, 4 features), beside one target per step.
    seq_first = (SLOW_DIVERGENCE
                 .replace("torch.eye(4)[:1].repeat(32, 1)", "torch.eye(4)[:1].repeat(32, 1)[None]")
                 .replace("return nn.Linear(4, 1, bias=False)",
                          "return nn.Sequential(nn.Linear(4, 1, bias=False), nn.Flatten(0, 2))")
                 .replace("torch.zeros(32, 1)", "torch.zeros(32)"))
    report = lint(seq_first, select=["GL604"])
    assert report.findings[0].message.startswith("60 SGD(lr=1.075) steps on the example batch raise the loss to")
    assert report.evidence["m:resampled_growth_60"] == MAX_DECADES  # from the 60 repeated steps
    assert report.passes == {"forward": 1 + 60, "backward": 1 + 60}  # one lookahead, not two
    assert "lookahead: the example batch's tensors disagree on their first dimension, so GL604 does not " \
           "resample its rows and only repeats it" in report.assumptions


# -- the model and the optimizer are left exactly as found --------------------------------------------
def test_rules_leave_model_and_optimizer_untouched():
    import torch
    import torch.nn as nn

    import gradlint

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 32), nn.BatchNorm1d(32), nn.Tanh(), nn.Dropout(0.1), nn.Linear(32, 4))
    optimizer = torch.optim.SGD(model.parameters(), lr=5.0, momentum=0.9)
    model(torch.randn(8, 16)).sum().backward()
    optimizer.step()  # the optimizer already has momentum buffers
    params = {n: p.detach().clone() for n, p in model.named_parameters()}
    grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    buffers = {n: b.clone() for n, b in model.named_buffers()}
    state = {k: v["momentum_buffer"].clone() for k, v in optimizer.state.items()}
    model.eval()

    report = gradlint.check(model, torch.randn(8, 16), optimizer=optimizer, select=["GL6"])
    assert report.error is None and report.findings  # lr 5 is unstable: the rules ran their passes

    assert not model.training
    for name, parameter in model.named_parameters():
        assert torch.equal(parameter, params[name]) and torch.equal(parameter.grad, grads[name])
    for name, buffer in model.named_buffers():
        assert torch.equal(buffer, buffers[name])
    assert all(torch.equal(optimizer.state[k]["momentum_buffer"], v) for k, v in state.items())
    assert optimizer.param_groups[0]["params"][0] is next(model.parameters())


# -- quiet on healthy setups -------------------------------------------------------------------------
@pytest.mark.parametrize("name", [*STANDARD_MODELS, *HEALTHY_SETUPS])
def test_healthy_setups_have_no_optimizer_findings(lint, name):
    source = STANDARD_MODELS.get(name) or HEALTHY_SETUPS[name]
    report = lint(source, select=["GL6"])
    assert report.error is None, report.error
    assert report.findings == (), [f.message for f in report.findings]


def test_finite_difference_hvp_matches_double_backward(tmp_path):
    import torch

    from gradlint.measure.surface import loss_surface
    from gradlint.discover import Target
    from gradlint.load import load_target

    path = tmp_path / "net.py"
    path.write_text(TANH_NET.format(lr=0.1))
    spec = load_target(Target(str(path)))
    with loss_surface(spec) as surface:
        vector = [torch.randn(p.shape, generator=torch.Generator().manual_seed(1)) for p in surface.params]
        exact = surface.hvp(vector)
        approximate = surface._finite_difference_hvp(vector)
    for a, b in zip(exact, approximate):
        assert torch.allclose(a, b, rtol=1e-2, atol=1e-3 * float(a.abs().max()))
