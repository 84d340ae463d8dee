"""Turn command-line PATH arguments into lint targets, without importing torch.

Forms: `model.py`, `dir/` (recursive), `model.py::NAME`, `model.onnx`, `pkg.module:NAME`.
A directory scan keeps a .py file only when a cheap source check says it may hold a model,
so pre-commit can pass every staged file and pay nothing for files without one.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from gradlint.errors import UsageError

# A file may define a model if it mentions torch and one of the names gradlint loads.
_MENTIONS_TORCH = re.compile(r"^\s*(import torch|from torch)", re.MULTILINE)
_DEFINES_MODEL = re.compile(
    r"^def build_model\b|^model\s*[:=]|^class \w+\([^)]*\b(nn\.)?Module\)", re.MULTILINE
)
_SKIPPED_DIRS = {".git", ".hg", ".svn", ".venv", "venv", "__pycache__", "node_modules", ".tox", ".nox",
                 ".mypy_cache", ".pytest_cache", ".ruff_cache", "build", "dist", "site-packages"}
_IMPORT_STRING = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


@dataclass(frozen=True)
class Target:
    """One thing to lint: a file (optionally with a chosen factory) or an import string."""

    path: str
    name: str | None = None
    kind: str = "python"  # python | onnx | import
    # Why the target cannot be linted, when discovery already knows (a missing file, a FIFO): it
    # is reported as that target's one-line error, and the rest of the run goes on.
    error: str | None = None

    @property
    def label(self) -> str:
        return self.path if self.name is None or self.kind == "import" else f"{self.path}::{self.name}"


def may_define_model(source: str) -> bool:
    """Cheap check used for directory scans and pre-commit: no parse, no torch."""
    return bool(_MENTIONS_TORCH.search(source) and _DEFINES_MODEL.search(source))


def expand(arguments: list[str], skip_non_models: bool = False) -> list[Target]:
    """Targets for the given arguments, in order, each file once.

    A .py file named explicitly is linted even when the cheap check finds no model (the loader
    then reports it), unless `skip_non_models`: pre-commit names every staged file.
    """
    targets: list[Target] = []
    for argument in arguments:
        targets.extend(
            t for t in _expand_one(argument)
            if not (skip_non_models and t.kind == "python" and t.name is None and not _file_may_define_model(t.path))
        )
    unique: dict[Target, None] = dict.fromkeys(targets)
    return list(unique)


def _expand_one(argument: str) -> list[Target]:
    path, sep, name = argument.partition("::")
    if os.path.isdir(path) and not sep:
        return _scan_directory(path)
    if path.endswith(".onnx"):
        return [Target(path, None, "onnx")]
    if path.endswith(".py") or os.path.exists(path):
        return [Target(path, name or None, "python")]
    if _IMPORT_STRING.match(argument):
        return [Target(argument, argument.partition(":")[2], "import")]
    raise UsageError(f"{argument}: no such file or directory")


def _scan_directory(root: str) -> list[Target]:
    found: list[Target] = []
    for directory, subdirs, files in os.walk(root):
        subdirs[:] = sorted(d for d in subdirs if d not in _SKIPPED_DIRS and not d.endswith(".egg-info"))
        for filename in sorted(files):
            path = os.path.join(directory, filename)
            if filename.endswith(".onnx"):
                found.append(Target(path, None, "onnx"))
            elif filename.endswith(".py") and _file_may_define_model(path):
                found.append(Target(path, None, "python"))
    return found


def _file_may_define_model(path: str) -> bool:
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return may_define_model(handle.read())
    except OSError:
        return True  # let the loader report why it cannot be read
