"""Output formats. Each module renders a run's reports to text; the CLI picks one by name.

Every renderer takes `(reports, quiet=False, baseline=None)`; `baseline` is the run's
`gradlint.baseline.BaselineResult` when --baseline is in use. Formats that can print each target
as it finishes (the CLI streams them) also have `render_model(report, quiet, first)` and
`render_end(reports, quiet, baseline, first)`, whose concatenation is `render`; `first` says that
nothing was printed before (the full format separates paragraphs by blank lines).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from types import ModuleType

from gradlint.findings import ModelReport

Renderer = Callable[[Sequence[ModelReport]], str]

# Format name -> module. Each module is imported when its format is used: a run prints one
# format, and a pre-commit run over files without a model should not pay for the others.
_MODULES = {
    "concise": "concise",
    "full": "full",
    "json": "json_format",
    "json-lines": "json_lines",
    "sarif": "sarif",
    "github": "github",
    "html": "html",
}


class _Renderers(Mapping):
    """Format name -> render function, importing the format's module on first use."""

    def __getitem__(self, name: str) -> Callable[..., str]:
        return importlib.import_module(f"gradlint.emit.{_MODULES[name]}").render

    def __iter__(self) -> Iterator[str]:
        return iter(_MODULES)

    def __len__(self) -> int:
        return len(_MODULES)


FORMATS: Mapping[str, Callable[..., str]] = _Renderers()


def streaming(name: str) -> ModuleType | None:
    """The format's module when it renders target by target (render_model, render_end), else None:
    a JSON document, SARIF and GitHub's sorted annotations need every report first."""
    module = importlib.import_module(f"gradlint.emit.{_MODULES[name]}")
    return module if hasattr(module, "render_model") else None
