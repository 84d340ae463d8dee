"""Assertions for test suites: keep a model trainable as the code around it changes.

    from gradlint.testing import assert_trainable

    def test_model_is_trainable():
        assert_trainable(build_model(), torch.randn(8, 64))

The pytest plugin's `gradlint` fixture offers the same, with per-test defaults from the
`@pytest.mark.gradlint(...)` marker. Importing this module does not import torch.
"""

from __future__ import annotations

from typing import Any

from gradlint.findings import ModelReport, Severity


def check(model: Any, example_inputs: Any, **options: Any) -> ModelReport:
    """`gradlint.check`: the report for a model object (see gradlint.api.check for the options)."""
    from gradlint.api import check as _check

    return _check(model, example_inputs, **options)


def assert_trainable(model: Any, example_inputs: Any, *, fail_on: str = "error", **options: Any) -> ModelReport:
    """Fail when gradlint finds a cause of exploding gradients at or above `fail_on` (error,
    warning or info). The failure message is the full-format report; on success, the report."""
    __tracebackhide__ = True  # pytest: show the caller's line, not this one
    threshold = Severity.parse(fail_on)
    report = check(model, example_inputs, **options)
    if any(f.severity.rank >= threshold.rank for f in report.findings):
        from gradlint.emit import full

        raise AssertionError(full.render([report]).rstrip("\n"))
    return report


class Checker:
    """What the `gradlint` fixture gives a test: check() and assert_trainable() with the test's
    default options (from its `gradlint` marker), which keyword arguments override."""

    def __init__(self, **defaults: Any) -> None:
        self.defaults = defaults

    def check(self, model: Any, example_inputs: Any, **options: Any) -> ModelReport:
        merged = {**self.defaults, **options}
        merged.pop("fail_on", None)  # assert_trainable's option, which a marker may set for both
        return check(model, example_inputs, **merged)

    def assert_trainable(self, model: Any, example_inputs: Any, **options: Any) -> ModelReport:
        __tracebackhide__ = True
        return assert_trainable(model, example_inputs, **{**self.defaults, **options})
