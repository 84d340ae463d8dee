"""Shared helpers: lint a model source written to a temporary file, as a user would."""

from __future__ import annotations

import contextlib
import signal

import pytest

from gradlint.testing import lint_example


def lint_source(tmp_path, source: str, select=None, name: str = "model.py", probe: bool = True):
    return lint_example(source, select, tmp_path, name, probe)


@pytest.fixture
def lint(tmp_path):
    def run(source: str, select=None, **kwargs):
        return lint_source(tmp_path, source, select, **kwargs)

    return run


def pytest_configure(config):
    # The test models are tiny: one thread avoids oversubscribing the CPU when tests, rules and
    # CI share a small machine (a 30-layer BatchNorm example takes 0.15 s instead of 3 s).
    import torch

    torch.set_num_threads(1)


def no_evidence_risk(selected: str | None = None) -> str:
    """How the risk line reads for a model with no findings and no measurements: the fitted
    model's base rate (gradlint/risk_model.json changes when the corpus is refitted). With
    `selected` (a --select value), as the incomplete risk of that selection."""
    from gradlint import risk

    value = risk.combine([], {})
    return f"risk {value:.2f} ({risk.level(value)}{unselected(selected)})"


def unselected(select: str | None) -> str:
    """What a risk line adds when --select SELECT leaves out rules the risk weighs."""
    from gradlint import risk
    from gradlint.registry import all_rules
    from gradlint.selection import Selection, parse_selectors

    if select is None:
        return ""
    weighed = [r for r in all_rules() if risk.weighs(r)]
    chosen = Selection(select=parse_selectors([select])).apply(all_rules())
    missing = [r for r in weighed if r not in chosen]
    return f", incomplete: {len(missing)} of {len(weighed)} rules not selected" if missing else ""


def risk_text(model: dict) -> str:
    """`0.03 (low)` or `0.03 (low, incomplete: ...)`: a json model's risk as the text formats show it."""
    incomplete = f", incomplete: {', '.join(model['risk_incomplete'])}" if model.get("risk_incomplete") else ""
    return f"{model['risk']:.2f} ({model['level']}{incomplete})"


@contextlib.contextmanager
def never_blocks(seconds: float = 10.0):
    """Fail the test instead of hanging the suite when the code under test blocks forever (in
    open() on a FIFO, say): SIGALRM interrupts the system call and the handler raises."""
    def blocked(_signum, _frame):
        raise AssertionError(f"still blocked after {seconds} s")

    previous = signal.signal(signal.SIGALRM, blocked)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
