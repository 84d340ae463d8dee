"""Turn command-line PATH arguments into lint targets, without importing torch.

Forms: `model.py`, `dir/` (recursive), `model.py::NAME`, `model.onnx`, `pkg.module:NAME`.
A directory scan keeps a .py file only when a cheap source check says it may hold a model,
so pre-commit can pass every staged file and pay nothing for files without one.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from gradlint import sources
from gradlint.locations import display_path

# A file may define a model if it mentions torch and one of the names gradlint loads. Both run
# over whole files and must stay linear in their size: `[ \t]` where `\s` would also span newlines
# (from every line start across thousands of blank lines), and a class's base list stops at the
# next parenthesis of either kind, so each `class X(` scans only up to its own `)` or the next `(`
# and the scans of different classes never overlap. The base list may span lines
# (`class Net(\n    nn.Module,\n):`); `Module` must be a whole name in it (nn.Module,
# torch.nn.Module, a bare Module), not part of one (LightningModule).
_MENTIONS_TORCH = re.compile(r"^[ \t]*(?:import|from)[ \t]+torch", re.MULTILINE)
_DEFINES_MODEL = re.compile(r"^def build_model\b|^model[ \t]*[:=]", re.MULTILINE)
_CLASS_BASES = re.compile(r"^class[ \t]+\w+[ \t]*\(([^()]*)\)", re.MULTILINE)
_MODULE_BASE = re.compile(r"(?<!\w)Module(?!\w)")
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
    """Cheap check used for directory scans and pre-commit: no parse, no torch; linear time."""
    if not _MENTIONS_TORCH.search(source):
        return False
    return bool(_DEFINES_MODEL.search(source)) or any(_MODULE_BASE.search(bases.group(1))
                                                      for bases in _CLASS_BASES.finditer(source))


def expand(arguments: list[str], skip_non_models: bool = False) -> list[Target]:
    """Targets for the given arguments, in order, each file once. Never raises for a bad path:
    a path that cannot be linted becomes a Target with its `error`.

    A .py file named explicitly is linted even when the cheap check finds no model (the loader
    then reports it), unless `skip_non_models`: pre-commit names every staged file, and each is
    then kept or skipped as a directory scan would.
    """
    targets: list[Target] = []
    for argument in arguments:
        for target in _expand_one(argument):
            if skip_non_models and target.kind == "python" and target.name is None:
                target = _scanned_python_file(target.path)
            if target is not None:
                targets.append(target)
    unique: dict[Target, None] = dict.fromkeys(targets)
    return list(unique)


def _expand_one(argument: str) -> list[Target]:
    path, sep, name = argument.partition("::")
    # Every line names a file the same way, as ruff does: relative to the working directory when
    # under it (`./x.py` and `/home/me/proj/x.py` both print as x.py), else absolute.
    path = display_path(path) if path else path
    if os.path.isdir(path) and not sep:
        return _scan_directory(path)
    if path.endswith(".onnx"):
        return [Target(path, None, "onnx", error=sources.file_problem(path))]
    # lexists: a broken link or a link loop is a path the user named, reported as such.
    if path.endswith(".py") or os.path.lexists(path):
        return [Target(path, name or None, "python", error=sources.source_problem(path))]
    if _IMPORT_STRING.match(argument):
        return [Target(argument, argument.partition(":")[2], "import")]
    return [Target(path, name or None, "python", error="no such file or directory")]


def _scan_directory(root: str) -> list[Target]:
    """The model files under `root`. Symbolic links to directories are not followed (as git and
    ruff do not): a link back to an ancestor would loop forever, and one to elsewhere lints
    files outside the tree. Links to files are followed, then judged like the file itself."""
    found: list[Target] = []
    for directory, subdirs, files in os.walk(root, followlinks=False):
        subdirs[:] = sorted(d for d in subdirs if d not in _SKIPPED_DIRS and not d.endswith(".egg-info"))
        for filename in sorted(files):
            path = os.path.normpath(os.path.join(directory, filename))  # `gradlint .` prints x.py, not ./x.py
            if filename.endswith(".onnx"):
                target = _scanned_onnx_file(path)
            elif filename.endswith(".py"):
                target = _scanned_python_file(path)
            else:
                continue
            if target is not None:
                found.append(target)
    return found


def _scanned_onnx_file(path: str) -> Target | None:
    """A scan passes over what is not a regular file (a FIFO, a device) and reports what cannot
    be reached (a symbolic link loop, a broken link)."""
    try:
        sources.check_regular_file(path)
    except sources.NotAFile:
        return None
    except sources.SourceError as error:
        return Target(path, None, "onnx", error=str(error))
    return Target(path, None, "onnx")


def _scanned_python_file(path: str) -> Target | None:
    """As _scanned_onnx_file; a .py file too large to be a model source is passed over too, and
    one is kept only when the cheap check says it may define a model."""
    try:
        text = sources.text_for_scan(sources.read_source(path))
    except sources.NotAFile:
        return None
    except sources.SourceError as error:
        return Target(path, None, "python", error=str(error))
    return Target(path) if may_define_model(text) else None
