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
    assert finding.module == "0" and finding.severity == Severity.WARNING  # as large as the weight, under 10x
    assert "lr=0.003" in finding.fix.code  # 0.1 * 0.1 / 2.77 = 3.6e-3, rounded down


def test_first_update_ratio_boundary(lint):
    below = lint(MLP.format(optimizer="Adam(model.parameters(), lr=3e-3)", extra=""), select=["GL601"])
    above = lint(MLP.format(optimizer="Adam(model.parameters(), lr=5e-3)", extra=""), select=["GL601"])
    assert below.findings == ()  # 3e-3 * 27.7 = 0.083
    assert [f.severity for f in above.findings] == [Severity.INFO]  # 0.14


@pytest.mark.parametrize("lr,severity", [(0.02, Severity.INFO), (0.05, Severity.WARNING), (0.4, Severity.ERROR)])
def test_first_update_severities(lint, lr, severity):
    # Ratios 0.55, 1.4 and 11: an info below an update as large as the weight, a warning from it, an
    # error from ten times it (the bands the corpus measured, BENCHMARKS.md "Severities").
    report = lint(MLP.format(optimizer=f"Adam(model.parameters(), lr={lr})", extra=""), select=["GL601"])
    assert [f.severity for f in report.findings] == [severity]


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
    assert default.findings[0].severity == Severity.INFO and default.findings[0].message.startswith("5 SGD(lr=1.075) steps")
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


# -- what makes a large update or a high curvature harmless (gradlint.measure.scale) -------------
def _traced(tmp_path, source: str):
    """The recorded forward pass and the model of a model file."""
    from gradlint.discover import Target
    from gradlint.load import load_target
    from gradlint.probe import observe

    path = tmp_path / "net.py"
    path.write_text(source)
    spec = load_target(Target(str(path)))
    return observe(spec, want_trace=True, want_probe=False).trace, spec.model


KINDS_OF_WEIGHT = '''
import torch
import torch.nn as nn

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)                    # into BatchNorm, with a bias: invariant
        self.bn = nn.BatchNorm2d(8)
        self.conv_relu = nn.Conv2d(8, 8, 3, padding=1, bias=False)   # a ReLU before the norm: not looked through
        self.bn2 = nn.BatchNorm2d(8)
        self.free = nn.Linear(8, 16, bias=False)                     # into LayerNorm, no bias: invariant
        self.ln = nn.LayerNorm(16)
        self.biased = nn.Linear(16, 16)                              # into LayerNorm with a bias: not
        self.ln2 = nn.LayerNorm(16)
        self.skip = nn.Linear(16, 16, bias=False)                    # into LayerNorm and a residual add: not
        self.ln3 = nn.LayerNorm(16)
        self.head = nn.Linear(16, 4)

    def forward(self, x):
        x = self.bn(self.conv(x))
        x = self.bn2(torch.relu(self.conv_relu(x)))
        x = self.ln(self.free(x.mean((2, 3))))
        x = self.ln2(self.biased(x))
        s = self.skip(x)
        return self.head(self.ln3(s) + s)

def build_model():
    return Net()

def example_inputs():
    return (torch.randn(8, 3, 8, 8),)
'''


def test_scale_invariant_weights_are_those_a_normalization_divides_out(tmp_path):
    from gradlint.measure.scale import output_weights, scale_invariant_weights

    trace, model = _traced(tmp_path, KINDS_OF_WEIGHT)
    assert scale_invariant_weights(trace, model) == {"conv.weight", "free.weight"}
    assert output_weights(trace, model) == {"head.weight"}


RESIDUAL_BRANCHES = '''
import math
import torch
import torch.nn as nn

class Block(nn.Module):
    def __init__(self, scaled):
        super().__init__()
        self.norm = nn.LayerNorm(64)
        self.fc = nn.Linear(64, 256)
        self.proj = nn.Linear(256, 64)
        nn.init.normal_(self.fc.weight, std=0.02)
        nn.init.normal_(self.proj.weight, std=0.02 / math.sqrt(8) if scaled else 0.02)

    def forward(self, x):
        return x + self.proj(torch.relu(self.fc(self.norm(x))))

def build_model():
    return nn.Sequential(nn.Linear(32, 64), Block(True), Block(False), nn.Linear(64, 10))

def example_inputs():
    return (torch.randn(8, 32),)
'''


def test_a_branch_end_below_its_peers_scale_is_measured_against_their_scale(tmp_path):
    # The scaled projection (std 0.02/sqrt(8) at fan-in 256: 0.113 per fan-in) is below its branch's
    # input layer (0.02 at fan-in 64: 0.16) and is measured against fc's size at its own fan-in,
    # RMS(fc) * sqrt(64 / 256). The unscaled one (0.02 at fan-in 256: 0.32) keeps its own RMS.
    from gradlint.measure.scale import downscaled_residual_outputs

    trace, model = _traced(tmp_path, RESIDUAL_BRANCHES)
    references = downscaled_residual_outputs(trace, model)
    assert set(references) == {"1.proj.weight"}
    fc_rms = float(model[1].fc.weight.detach().pow(2).mean().sqrt())
    assert references["1.proj.weight"] == pytest.approx(fc_rms * math.sqrt(64 / 256), rel=1e-6)


def test_default_init_transformer_has_no_downscaled_branch(tmp_path):
    # PyTorch's default init gives every layer the same size per fan-in: the FFN's output layer, with
    # 4x the fan-in of its input layer, is not mistaken for a scaled one.
    from gradlint.measure.scale import downscaled_residual_outputs
    from tests.rules._standard_models import PRE_LN_TRANSFORMER

    trace, model = _traced(tmp_path, PRE_LN_TRANSFORMER)
    assert downscaled_residual_outputs(trace, model) == {}


def test_curvature_with_parameters_held_still_is_the_principal_submatrix(tmp_path):
    # Linear regression with MSE: H = 2/N [X 1]^T [X 1] over (weight, bias); holding the bias still
    # leaves 2/N X^T X, and holding everything still leaves no curvature. (float32 model, float64 check.)
    import torch

    from gradlint.discover import Target
    from gradlint.load import load_target
    from gradlint.measure.hessian import top_eigenvalue
    from gradlint.measure.surface import loss_surface

    source = '''
import torch
import torch.nn as nn

def build_model():
    return nn.Linear(6, 1)

def example_inputs():
    return (0.3 * torch.randn(40, 6, generator=torch.Generator().manual_seed(3)),)

def example_targets():
    return torch.zeros(40, 1)
'''
    path = tmp_path / "net.py"
    path.write_text(source)
    inputs = 0.3 * torch.randn(40, 6, generator=torch.Generator().manual_seed(3)).double()
    design = torch.cat([inputs, torch.ones(40, 1, dtype=torch.float64)], dim=1)
    full = float(torch.linalg.eigvalsh(2 / 40 * design.T @ design).max())
    weights_only = float(torch.linalg.eigvalsh(2 / 40 * inputs.T @ inputs).max())
    with loss_surface(load_target(Target(str(path)))) as surface:
        assert top_eigenvalue(surface, 30).value == pytest.approx(full, rel=1e-3)
        assert top_eigenvalue(surface, 30, fixed=frozenset({"bias"})).value == pytest.approx(weights_only, rel=1e-3)
        assert top_eigenvalue(surface, 30, fixed=frozenset({"weight", "bias"})).value == 0.0
    assert weights_only < 0.5 * full  # small inputs: the bias is the sharpest direction


@pytest.mark.parametrize("info,warmed", [
    (OptimizerInfo("AdamW", 6e-7, betas=(0.9, 0.95), peak_lr=6e-4, peak_step=100, peak_interval="step"), True),
    (OptimizerInfo("AdamW", 6e-7, betas=(0.9, 0.95), peak_lr=6e-4, peak_step=30, peak_interval="step"), False),
    (OptimizerInfo("Adam", 1e-5, betas=(0.9, 0.999), peak_lr=1e-3, peak_step=300, peak_interval="step"), False),
    (OptimizerInfo("SGD", 1e-3, peak_lr=0.1, peak_step=100, peak_interval="step"), True),
    (OptimizerInfo("SGD", 1e-3, peak_lr=0.1, peak_step=50, peak_interval="step"), False),
    (OptimizerInfo("AdamW", 1e-6, betas=(0.9, 0.999), peak_lr=1e-3, peak_step=5, peak_interval="epoch"), True),
    (OptimizerInfo("AdamW", 1e-3, betas=(0.9, 0.999)), False),
])
def test_a_warmup_is_a_rise_to_the_peak_over_the_steps_the_optimizer_needs(info, warmed):
    # 2 / (1 - beta2) steps for Adam-type optimizers (40 at beta2 0.95, 2000 at 0.999), 100 for SGD;
    # a schedule stepped per epoch counts whatever its length.
    from gradlint.measure.optimizer import warmed_up

    assert warmed_up(info) is warmed


def test_resampled_warning_reads_a_lasting_rise_not_one_batch():
    # One batch at 2.5x the first among falling losses is the batch, not the run: averaged over 5 steps
    # the loss never rises. A loss that climbs and stays up doubles its 5-step average.
    from gradlint.rules.optimizer.lookahead_diverges import smoothed_growth

    spike = [2.0, 1.9, 1.8, 1.7, 1.6, 5.0, 1.4, 1.3, 1.2, 1.1, 1.0, 0.9]
    climb = [2.0, 2.0, 2.1, 2.2, 2.4, 2.8, 3.3, 3.9, 4.5, 5.0, 5.2, 5.5]
    assert max(spike) / spike[0] == 2.5 and smoothed_growth(spike, 5) == pytest.approx(2.4 / 1.8)
    assert smoothed_growth(climb, 5) == pytest.approx((3.9 + 4.5 + 5.0 + 5.2 + 5.5) / 5 / 2.14)  # 2.25
    assert smoothed_growth(spike[:9], 5) is None  # under two windows: the single steps decide


WARMED_UP = '''
import torch
import torch.nn as nn

def build_model():
    return nn.Sequential(nn.Linear(256, 64), nn.ReLU(), nn.Linear(64, 10))

def example_inputs():
    return (torch.randn(32, 256),)

def configure_optimizers(model):
    optimizer = torch.optim.Adam(model.parameters(), lr={lr}, betas=(0.9, 0.99))
    warmup = torch.optim.lr_scheduler.LinearLR(optimizer, start_factor={start}, total_iters=250)
    return {{"optimizer": optimizer, "lr_scheduler": {{"scheduler": warmup, "interval": "step"}}}}
'''


def test_a_warmup_moves_the_small_update_note_to_its_starting_lr(lint):
    # 250 steps of warmup (beta2 0.99 needs 200): the first step is taken at start_factor x the peak.
    # At a peak ratio of 0.28 the note follows the starting lr: quiet from 1%, noted from 50% (0.14).
    quiet = lint(WARMED_UP.format(lr=1e-2, start=0.01), select=["GL601"])
    noted = lint(WARMED_UP.format(lr=1e-2, start=0.5), select=["GL601"])
    assert quiet.findings == ()
    (finding,) = noted.findings
    assert finding.severity == Severity.INFO
    assert finding.message.startswith("the first Adam step, at the LinearLR's starting lr 0.005, changes 0.weight by ")
    assert 0.12 < _number_after(finding.message, "0.weight by") < 0.16


def test_a_warmup_does_not_excuse_an_update_as_large_as_the_weight_at_the_peak(lint):
    (finding,) = lint(WARMED_UP.format(lr=0.1, start=0.01), select=["GL601"]).findings
    assert finding.severity == Severity.WARNING  # 2.8x the weight at the peak
    assert finding.message.startswith("at the LinearLR peak at step 250 (lr 0.1) a Adam step changes 0.weight by ")
    assert "which the warmup before it does not prevent" in finding.message


THREE_LAYERS = '''
import torch
import torch.nn as nn

def build_model():
    return nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))

def example_inputs():
    return (torch.randn(32, 32),)

def configure_optimizers(model):
    return torch.optim.{optimizer}
'''


def test_sgd_leaves_the_output_layer_to_the_curvature_bound(lint):
    # SGD lr 4: the output layer's first update is ~0.59x its norm, the hidden layers' under 0.3 (the
    # rule's example). At lr 8 the output layer's (1.2x) is still left to GL602 and the middle layer's
    # (0.43x) is reported; at lr 80 the output layer's is ten times its weight, an error. Adam's first
    # step counts every layer: at lr 0.02 all three exceed 0.1.
    assert lint(THREE_LAYERS.format(optimizer="SGD(model.parameters(), lr=4.0)"), select=["GL601"]).findings == ()
    (middle,) = lint(THREE_LAYERS.format(optimizer="SGD(model.parameters(), lr=8.0)"), select=["GL601"]).findings
    assert middle.module == "2" and middle.severity == Severity.INFO
    (large,) = lint(THREE_LAYERS.format(optimizer="SGD(model.parameters(), lr=80.0)"), select=["GL601"]).findings
    assert large.module == "4" and large.severity == Severity.ERROR
    (adam,) = lint(THREE_LAYERS.format(optimizer="Adam(model.parameters(), lr=0.02)"), select=["GL601"]).findings
    assert "2 more of 3 weight tensors exceed 0.1" in adam.message


def test_adafactor_is_described_and_stepped(lint):
    # Adafactor's eps is a pair (None, 1e-3): describing it once crashed every optimizer rule (T5's recipe).
    import torch

    from gradlint.optimizers import describe_optimizer

    info = describe_optimizer(torch.optim.Adafactor(torch.nn.Linear(4, 4).parameters(), lr=1e-2))
    assert (info.name, info.lr, info.eps) == ("Adafactor", 1e-2, None)
    report = lint(MLP.format(optimizer="Adafactor(model.parameters(), lr=1e-2)", extra=""), select=["GL6"])
    assert report.error is None and report.findings == ()


BN_NET = '''
import torch
import torch.nn as nn

def build_model():
    model = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU(),
                          nn.Conv2d(16, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32), nn.ReLU(),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10))
    for conv in (model[0], model[3]):
        nn.init.normal_(conv.weight, std=0.01)
    return model

def example_inputs():
    return (torch.randn(16, 3, 16, 16, generator=torch.Generator().manual_seed(0)),)
{loss}
def configure_optimizers(model):
    return torch.optim.SGD(model.parameters(), lr={lr}, momentum=0.9)
'''
SQUARED_ERROR = '''
def example_targets():
    return torch.randn(16, 10, generator=torch.Generator().manual_seed(1))

def loss_fn(output, targets):
    return nn.functional.mse_loss(output, targets)
'''


def test_curvature_leaves_out_weights_a_normalization_rescales(lint, tmp_path):
    # The small-init convolutions before BatchNorm carry most of the curvature (it grows as 1/||W||^2),
    # and none of the risk: the eigenvalue GL602 reports is the rest's.
    full = _top_eigenvalue(tmp_path, BN_NET.format(loss="", lr=0.5))
    (finding,) = lint(BN_NET.format(loss=SQUARED_ERROR, lr=10.0), select=["GL602"]).findings
    held = _number_after(finding.message, "top Hessian eigenvalue")
    assert held < full / 5
    assert "2 weight tensors before a normalization left out" in finding.message
    assert lint(BN_NET.format(loss="", lr=0.5), select=["GL602"]).findings == ()  # lr 0.5 x 17 would exceed 3.8


def test_cross_entropy_bounds_an_excess_that_is_the_output_layers(lint):
    # At lr 10 the output layer's curvature exceeds the bound: under a squared error a warning, under
    # cross-entropy (the default loss here, on random labels) an info, as its oscillation stays bounded.
    (squared,) = lint(BN_NET.format(loss=SQUARED_ERROR, lr=10.0), select=["GL602"]).findings
    (entropy,) = lint(BN_NET.format(loss="", lr=10.0), select=["GL602"]).findings
    assert squared.severity == Severity.WARNING and "catapult" not in squared.message
    assert entropy.severity == Severity.INFO
    assert "the excess is the output layer's, and cross-entropy, Lipschitz in the logits" in entropy.message
    assert entropy.weight > 0.3  # the risk weighs it as before: only the severity says it is bounded
