"""Output formats. Each module renders a run's reports to text; the CLI picks one by name.

Every renderer takes `(reports, quiet=False, baseline=None)`; `baseline` is the run's
`gradlint.baseline.BaselineResult` when --baseline is in use.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from gradlint.emit import concise, full, github, json_format, json_lines, sarif
from gradlint.findings import ModelReport

Renderer = Callable[[Sequence[ModelReport]], str]

FORMATS: dict[str, Callable[..., str]] = {
    "concise": concise.render,
    "full": full.render,
    "json": json_format.render,
    "json-lines": json_lines.render,
    "sarif": sarif.render,
    "github": github.render,
}
