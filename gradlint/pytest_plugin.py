"""pytest plugin (entry point `pytest11`): a `gradlint` fixture for test suites.

    def test_trainable(gradlint):
        report = gradlint.check(model, example_inputs)      # the report, as `gradlint model.py` prints it
        gradlint.assert_trainable(model, example_inputs)    # fails with the full-format report

    @pytest.mark.gradlint(select=["GL2"], fail_on="warning")   # defaults for this test's calls

pytest imports this module in every run where gradlint is installed, so it imports nothing
heavy: torch is imported when the fixture is used. Disable it with `-p no:gradlint`.
"""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "gradlint(**options): default options for the gradlint fixture's check() and "
                   "assert_trainable() in this test (select=..., ignore=..., fail_on=..., ...)")


@pytest.fixture
def gradlint(request: pytest.FixtureRequest):
    """A gradlint.testing.Checker: `check(model, example_inputs, ...)` returns the report,
    `assert_trainable(model, example_inputs, fail_on="error", ...)` fails on findings."""
    # Here, not at the top: pytest loads this plugin in every session of the environment, and only
    # a test that asks for the fixture should pay for importing the engine.
    from gradlint.testing import Checker

    marker = request.node.get_closest_marker("gradlint")
    return Checker(**(marker.kwargs if marker else {}))
