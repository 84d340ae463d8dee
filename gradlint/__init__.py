"""gradlint: find the causes of exploding gradients before the training run.

`import gradlint` stays cheap (no torch): the pytest plugin and pre-commit import it on every run.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["__version__", "check", "suggest_lr"]


def check(model: Any, example_inputs: Any, **options: Any):
    """Lint a model object; see `gradlint.api.check` for the options."""
    from gradlint.api import check as _check  # here, so that `import gradlint` stays cheap (above)

    return _check(model, example_inputs, **options)


def suggest_lr(model: Any, example_inputs: Any, **options: Any):
    """The learning rate gradlint predicts trains; see `gradlint.api.suggest_lr`."""
    from gradlint.api import suggest_lr as _suggest_lr

    return _suggest_lr(model, example_inputs, **options)
