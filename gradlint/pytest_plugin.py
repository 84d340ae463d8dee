"""pytest plugin (entry point `pytest11`): a `gradlint` fixture for test suites.

pytest imports this module in every run where gradlint is installed, so it imports nothing
heavy: torch is imported when the fixture is used.
"""

from __future__ import annotations

import pytest


@pytest.fixture
def gradlint():
    """The gradlint API: `gradlint.check(model, example_inputs, ...)` returns the report."""
    import gradlint as api

    return api
