"""`gradlint.check`: the Python API behind the CLI, for notebooks and test suites."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from gradlint.engine import Settings, lint_spec
from gradlint.findings import Severity, Suggestion
from gradlint.locations import class_location, display_path
from gradlint.notebook import Report
from gradlint.optimizers import describe_optimizer
from gradlint.registry import all_rules
from gradlint.selection import Selection, parse_selectors
from gradlint.spec import ModelSpec


def check(
    model: Any,
    example_inputs: Any,
    *,
    targets: Any = None,
    loss_fn: Callable | None = None,
    optimizer: Any = None,
    gradient_clip_val: float | None = None,
    select: Sequence[str] | None = None,
    ignore: Sequence[str] | None = None,
    extend_select: Sequence[str] | None = None,
    device: str = "cpu",
    seed: int = 0,
    probe: bool = True,
    severity: dict[str, str] | None = None,
    suggest_lr: bool = True,
) -> Report:
    """Lint a model object, as `gradlint model.py` lints a file. The model is left as it was.

    `example_inputs` is one tensor or a tuple of forward's positional arguments. Without
    `optimizer`, AdamW(lr=1e-3) is assumed; without `loss_fn`, a default chosen from the output
    and the inputs: next-token cross-entropy for a causal LM, cross-entropy or MSE otherwise
    (README, "Model files"). The report prints as the concise text report, shows as HTML with
    plots in a notebook, and has `to_dict()` and `plot()` (gradlint.notebook). `suggest_lr=False`
    skips the learning-rate suggestion (`report.suggestion` is then None), which costs a lookahead
    or more.
    """
    import torch

    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"check() needs an nn.Module, got {type(model).__name__}")
    inputs = (example_inputs,) if isinstance(example_inputs, torch.Tensor) else tuple(example_inputs)
    assumptions = []
    if optimizer is None:
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
        assumptions.append("optimizer: AdamW(lr=0.001) (no optimizer given)")
    location = class_location(model)
    path = location.path if location else "<model>"

    spec = ModelSpec(
        target=f"{path}::{type(model).__name__}" if location else type(model).__name__,
        path=display_path(path) if location else path,
        model=model, inputs=inputs, targets=targets, loss_fn=loss_fn,
        optimizer=describe_optimizer(optimizer), optimizer_object=optimizer,
        gradient_clip_val=gradient_clip_val, model_location=location,
        assumptions=tuple(assumptions), source_format="api",
    )
    selection = Selection(select=parse_selectors(select) or ("ALL",), extend_select=parse_selectors(extend_select),
                          ignore=parse_selectors(ignore))
    overrides = tuple((code.upper(), Severity.parse(level)) for code, level in (severity or {}).items())
    settings = Settings(rules=tuple(selection.apply(all_rules())), device=device, seed=seed, probe=probe,
                        severities=overrides, suggest_lr=suggest_lr)
    return Report.of(lint_spec(spec, settings))


def suggest_lr(model: Any, example_inputs: Any, **options: Any) -> Suggestion | None:
    """The largest learning rate at which gradlint predicts the model trains, for `optimizer` (its
    class, hyper-parameters and schedule shape; AdamW(lr=1e-3) when none is given), as
    `gradlint --suggest-lr` prints it. Takes `check`'s options. None when no suggestion can be
    made: the model did not run, or not every rule the risk weighs was selected. A Suggestion
    whose `lr` is None says in `basis` why no lr tried is predicted to train."""
    return check(model, example_inputs, **options).suggestion
