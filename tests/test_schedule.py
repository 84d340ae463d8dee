"""LR schedules: the optimizer rules check the schedule's peak, found on copies."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from gradlint import optimizers as schedule  # the LR schedule's peak
from gradlint.overrides import Overrides

MODEL = '''
import torch
import torch.nn as nn

def build_model():
    return nn.Sequential(nn.Linear(32, 64), nn.Tanh(), nn.Linear(64, 10))

def example_inputs():
    return (torch.randn(16, 32) * 3,)

def configure_optimizers(model):
    optimizer = torch.optim.SGD(model.parameters(), lr={lr})
    {configured}
'''


def _optimizer(lr=0.1):
    return torch.optim.SGD(nn.Linear(2, 2).parameters(), lr=lr)


def test_one_cycle_peak_per_step():
    optimizer = _optimizer()
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=0.5, total_steps=200)
    found = schedule.find_scheduler({"optimizer": optimizer,
                                     "lr_scheduler": {"scheduler": scheduler, "interval": "step"}})
    peak = schedule.peak_of(*found, optimizer)
    assert peak.lr == pytest.approx(0.5)
    assert peak.step == 59  # OneCycleLR's default pct_start=0.3 of 200 steps, counted from 0
    assert peak.describe() == "the OneCycleLR peak at step 59"


def test_peak_leaves_the_users_optimizer_and_scheduler_as_they_were():
    optimizer = _optimizer()
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=0.5, total_steps=200)
    lr, epoch = optimizer.param_groups[0]["lr"], scheduler.last_epoch
    schedule.peak_of(scheduler, "step", 1, optimizer)
    assert (optimizer.param_groups[0]["lr"], scheduler.last_epoch) == (lr, epoch)


def test_frequency_counts_training_steps():
    optimizer = _optimizer(lr=1e-3)
    warmup = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(1.0, step / 100))
    found = schedule.find_scheduler({"optimizer": optimizer,
                                     "lr_scheduler": {"scheduler": warmup, "interval": "step", "frequency": 2}})
    assert found == (warmup, "step", 2)
    peak = schedule.peak_of(*found, optimizer)
    assert (peak.lr, peak.step) == (pytest.approx(1e-3), 200)  # 100 scheduler steps, one every 2 training steps


def test_warmup_from_zero():
    optimizer = _optimizer(lr=1e-3)
    warmup = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(1.0, step / 100))
    peak = schedule.peak_of(warmup, "step", 1, optimizer)
    assert optimizer.param_groups[0]["lr"] == 0.0
    assert (peak.lr, peak.step) == (pytest.approx(1e-3), 100)


def test_epoch_schedules_are_followed_for_a_few_epochs():
    optimizer = _optimizer(lr=1.0)
    warmup = torch.optim.lr_scheduler.LinearLR(optimizer, start_factor=0.1, total_iters=20)
    found = schedule.find_scheduler(([optimizer], [warmup]))
    assert found == (warmup, "epoch", 1)
    peak = schedule.peak_of(*found, optimizer)
    assert (peak.lr, peak.step) == (pytest.approx(0.1 + 0.9 * schedule.EPOCH_HORIZON / 20), schedule.EPOCH_HORIZON)


@pytest.mark.parametrize("make", [
    lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=10),  # only decays
    lambda o: torch.optim.lr_scheduler.ReduceLROnPlateau(o),  # needs a metric; only decays
])
def test_schedules_that_never_raise_the_lr_have_no_peak(make):
    optimizer = _optimizer()
    assert schedule.peak_of(make(optimizer), "step", 1, optimizer) is None


def test_no_scheduler():
    optimizer = _optimizer()
    assert schedule.find_scheduler(optimizer) is None
    assert schedule.find_scheduler({"optimizer": optimizer}) is None


CONFIGURED = ("schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=20.0, total_steps=100)\n"
              "    return {\"optimizer\": optimizer, \"lr_scheduler\": {\"scheduler\": schedule, \"interval\": \"step\"}}")


def test_rules_check_the_peak_and_leave_the_lr_argument_alone(lint):
    report = lint(MODEL.format(lr=0.1, configured=CONFIGURED), select=["GL602"])
    (finding,) = report.findings
    assert finding.message.startswith("lr 20 (the OneCycleLR peak at step 29) x top Hessian eigenvalue")
    assert finding.fix.code is None  # the peak is OneCycleLR's max_lr, not the SGD call's lr
    assert finding.fix.message.startswith("use the OneCycleLR peak lr <= ")
    source = MODEL.format(lr=0.1, configured=CONFIGURED).splitlines()
    assert "OneCycleLR(" in source[finding.location.line - 1]  # points at the schedule, which sets the peak
    quiet = lint(MODEL.format(lr=0.1, configured=CONFIGURED.replace("max_lr=20.0", "max_lr=0.1")), select=["GL602"])
    assert quiet.findings == ()


def test_lr_override_replaces_the_schedule(tmp_path):
    from gradlint.discover import Target
    from gradlint.load import load_target

    path = tmp_path / "model.py"
    path.write_text(MODEL.format(lr=0.1, configured=CONFIGURED))
    assert load_target(Target(str(path)), Overrides()).optimizer.checked_lr == pytest.approx(20.0)
    assert load_target(Target(str(path)), Overrides(lr=0.01)).optimizer.checked_lr == 0.01
