"""Output formats. Each module renders a run's reports to text; the CLI picks one by name."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from gradlint.emit import concise, full, json_format
from gradlint.findings import ModelReport

Renderer = Callable[[Sequence[ModelReport]], str]

FORMATS: dict[str, Callable[..., str]] = {
    "concise": concise.render,
    "full": full.render,
    "json": json_format.render,
}
