"""Assertions for test suites: keep a model trainable as the code around it changes.

    from gradlint.testing import assert_trainable

    def test_model_is_trainable():
        assert_trainable(build_model(), torch.randn(8, 64))

The pytest plugin's `gradlint` fixture offers the same, with per-test defaults from the
`@pytest.mark.gradlint(...)` marker. A rule package's test suite runs its rules' twin examples with
`test_examples = example_tests("XT")`. Importing this module does not import torch.
"""

from __future__ import annotations

import re
from typing import Any

from gradlint.api import check as _check
from gradlint.discover import Target
from gradlint.emit import full
from gradlint.engine import Settings, lint_target
from gradlint.findings import ModelReport, Severity
from gradlint.overrides import Overrides
from gradlint.registry import all_rules


def check(model: Any, example_inputs: Any, **options: Any) -> ModelReport:
    """`gradlint.check`: the report for a model object (see gradlint.api.check for the options)."""
    return _check(model, example_inputs, **options)


def assert_trainable(model: Any, example_inputs: Any, *, fail_on: str = "error", **options: Any) -> ModelReport:
    """Fail when gradlint finds a cause of exploding gradients at or above `fail_on` (error,
    warning or info). The failure message is the full-format report; on success, the report."""
    __tracebackhide__ = True  # pytest: show the caller's line, not this one
    threshold = Severity.parse(fail_on)
    # The gate reads findings only: the lr suggestion's extra lookahead would slow every test that
    # passes (suggest_lr=True brings it back, into the failure message too).
    options.setdefault("suggest_lr", False)
    report = check(model, example_inputs, **options)
    if any(f.severity.rank >= threshold.rank for f in report.findings):
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


# -- the twin examples a rule carries, as tests --------------------------------------------------

EXPECT = re.compile(r"#\s*expect:\s*([A-Z]+[0-9]+)")


def example_tests(prefix: str):
    """A pytest test, parametrized over every INVALID and VALID example of the installed rules
    whose codes start with `prefix`: in a rule package's test suite,

        from gradlint.testing import example_tests

        test_examples = example_tests("XT")

    Each example is written to a file and linted as `gradlint file.py --select CODE` would lint
    it, in this process: the rule must fire on each INVALID example (on the lines marked
    `# expect: CODE`, when some are) and stay quiet on each VALID one."""
    import pytest


    rules = [rule for rule in all_rules() if rule.code.startswith(prefix)]
    cases = [(rule, kind, i, source) for rule in rules
             for kind, sources in (("invalid", rule.INVALID), ("valid", rule.VALID))
             for i, source in enumerate(sources)]

    @pytest.mark.parametrize("rule,kind,index,source", cases, ids=[f"{r.code}-{k}{i}" for r, k, i, _ in cases])
    def test_rule_example(rule, kind, index, source, tmp_path):
        __tracebackhide__ = True
        check_example(rule, kind, index, source, tmp_path)

    return test_rule_example


def check_example(rule: Any, kind: str, index: int, source: str, folder: Any) -> None:
    """Assert that `rule` fires on (kind "invalid") or stays quiet on (kind "valid") `source`."""
    __tracebackhide__ = True
    report = lint_example(source, [rule.code, *rule.EXAMPLE_SELECT], folder)
    assert report.error is None, f"{rule.code} {kind} example {index}: {report.error}"
    hits = [f for f in report.findings if f.code == rule.code]
    if kind == "valid":
        assert hits == [], f"{rule.code} fired on its valid example {index}: {[f.message for f in hits]}"
        return
    assert hits, f"{rule.code} did not fire on its invalid example {index}"
    marked = [n for n, line in enumerate(source.splitlines(), start=1)
              if (match := EXPECT.search(line)) and match.group(1) == rule.code]
    if marked:
        lines = {f.location.line for f in hits}
        assert lines <= set(marked), f"{rule.code} pointed at lines {sorted(lines)}, expected {marked}"


def lint_example(source: str, select: Any, folder: Any, name: str = "model.py", probe: bool = True) -> ModelReport:
    """Lint `source` written to `folder/name` with the rules whose codes start with `select` (all
    for None), in this process (no worker: a rule's own test suite wants its tracebacks)."""
    import os


    path = os.path.join(str(folder), name)
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(source)
    rules = tuple(r for r in all_rules() if select is None or any(r.code.startswith(s) for s in select))
    return lint_target(Target(path), Settings(rules=rules, probe=probe), Overrides())
