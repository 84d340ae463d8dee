"""Memory-lean probes: the same numbers without holding whole copies of the parameters.

Large models (over gradlint.measure.memory.LEAN_BYTES of trainable parameters) get a first optimizer
step computed one tensor at a time, and skip the probes that need whole vectors. These tests
lower the limit to exercise that path on tiny models, and check it against the full path.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from gradlint.measure import first_step as stepping
from gradlint.measure import memory
from gradlint.measure import surface as surfaces
from gradlint.probe import observe
from gradlint.spec import ModelSpec, OptimizerInfo

SOURCE = '''
import torch
import torch.nn as nn

def build_model():
    return nn.Sequential(nn.Linear(32, 64), nn.Tanh(), nn.Linear(64, 10))

def example_inputs():
    return (torch.randn(16, 32) * 3,)

def configure_optimizers(model):
    return torch.optim.SGD(model.parameters(), lr=20.0)
'''


def _spec(optimizer_factory, clip=None, unused=False):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 3))
    if unused:
        model.extra = nn.Parameter(torch.randn(4, 4))  # never used in forward: backward never reaches it
    optimizer = optimizer_factory(model.parameters())
    return ModelSpec(target="m", path="m.py", model=model, inputs=(torch.randn(12, 8),),
                     targets=torch.randint(0, 3, (12,)), optimizer=OptimizerInfo(type(optimizer).__name__, 0.1),
                     optimizer_object=optimizer, gradient_clip_val=clip)


OPTIMIZERS = {
    "sgd": lambda p: torch.optim.SGD(p, lr=0.3),
    "sgd-momentum-nesterov-wd": lambda p: torch.optim.SGD(p, lr=0.3, momentum=0.9, nesterov=True, weight_decay=0.1),
    "adam": lambda p: torch.optim.Adam(p, lr=0.01),
    "adamw-wd": lambda p: torch.optim.AdamW(p, lr=0.01, weight_decay=0.5),
    "rmsprop": lambda p: torch.optim.RMSprop(p, lr=0.01),
}


@pytest.mark.parametrize("slice_elements", [stepping.SLICE_ELEMENTS, 7])  # 7: every tensor in uneven slices
@pytest.mark.parametrize("clip", [None, 0.05])
@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_lean_first_step_matches_the_full_one(name, clip, slice_elements, monkeypatch):
    monkeypatch.setattr(stepping, "SLICE_ELEMENTS", slice_elements)
    spec = _spec(OPTIMIZERS[name], clip)
    with surfaces.loss_surface(spec) as surface:
        full = stepping.first_step(surface, spec.optimizer_object, spec.optimizer, clip)
    with surfaces.loss_surface(spec) as surface:
        lean = stepping.first_step(surface, spec.optimizer_object, spec.optimizer, clip, lean=True)
        assert surface.passes == {"forward": 2 if clip else 1, "backward": 2 if clip else 1}
    assert lean.gradient is None and lean.update is None
    assert lean.loss == pytest.approx(full.loss)
    assert lean.grad_norm == pytest.approx(full.grad_norm, rel=1e-5)
    assert lean.clip_scale == pytest.approx(full.clip_scale, rel=1e-5)
    assert lean.descent == pytest.approx(full.descent, rel=1e-4)
    for a, b in zip(lean.tensors, full.tensors, strict=True):
        assert a.name == b.name
        assert a.update_rms == pytest.approx(b.update_rms, rel=1e-4, abs=1e-12)
        assert a.dot == pytest.approx(b.dot, rel=1e-4, abs=1e-12)


def test_lean_first_step_uses_each_parameters_own_group():
    def two_groups(parameters):
        first, *rest = list(parameters)
        return torch.optim.SGD([{"params": [first], "lr": 1.0}, {"params": rest}], lr=0.01)

    spec = _spec(two_groups)
    with surfaces.loss_surface(spec) as surface:
        full = stepping.first_step(surface, spec.optimizer_object, spec.optimizer)
    with surfaces.loss_surface(spec) as surface:
        lean = stepping.first_step(surface, spec.optimizer_object, spec.optimizer, lean=True)
    assert [t.update_rms for t in lean.tensors] == pytest.approx([t.update_rms for t in full.tensors], rel=1e-5)


def test_lean_first_step_leaves_model_and_optimizer_untouched():
    spec = _spec(OPTIMIZERS["adam"], unused=True)
    before = {name: p.detach().clone() for name, p in spec.model.named_parameters()}
    with surfaces.loss_surface(spec) as surface:
        lean = stepping.first_step(surface, spec.optimizer_object, spec.optimizer, lean=True)
    assert all(torch.equal(before[name], p) for name, p in spec.model.named_parameters())
    assert all(p.grad is None for p in spec.model.parameters())
    assert not spec.optimizer_object.state
    unused = [t for t in lean.tensors if t.name == "extra"]
    assert unused and all(t.update_rms == 0.0 and t.grad_sq == 0.0 for t in unused)


def test_probe_measures_gradients_without_keeping_them():
    spec = _spec(OPTIMIZERS["sgd"])
    probe = observe(spec, want_trace=True, want_probe=True).probe
    model = spec.model
    loss = nn.functional.cross_entropy(model(*spec.inputs), spec.targets)
    expected = torch.autograd.grad(loss, list(model.parameters()))
    assert [s.grad_norm for s in probe.params] == pytest.approx([float(g.norm()) for g in expected], rel=1e-5)
    assert all(p.grad is None for p in model.parameters())


def test_large_model_skips_whole_vector_probes_and_says_so(lint, monkeypatch):
    monkeypatch.setattr(memory, "LEAN_BYTES", 1024)  # the 32-64-10 MLP takes 11 KB
    report = lint(SOURCE, select=["GL6"])
    assert [f.code for f in report.findings] == ["GL601"]  # computed lean; GL602 would fire on the full path
    (note,) = [a for a in report.assumptions if a.startswith("probe: lean")]
    # GL603 does not apply to SGD; the two probes that would copy the parameters are named.
    assert note == ("probe: lean, the trainable parameters take 0.0105 MB (over 0.000977 MB): skipped "
                    "GL602 curvature, GL604 lookahead; --thorough runs them")


def test_thorough_runs_the_full_probes_on_a_large_model(tmp_path, monkeypatch):
    from gradlint.discover import Target
    from gradlint.engine import Settings, lint_target
    from gradlint.overrides import Overrides
    from gradlint.registry import all_rules

    monkeypatch.setattr(memory, "LEAN_BYTES", 1024)
    path = tmp_path / "model.py"
    path.write_text(SOURCE)
    rules = tuple(r for r in all_rules() if r.code.startswith("GL60"))
    report = lint_target(Target(str(path)), Settings(rules=rules, thorough=True), Overrides())
    assert "GL602" in {f.code for f in report.findings}
    assert not any(a.startswith("probe: lean") for a in report.assumptions)
