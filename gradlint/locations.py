"""Where the user constructed each layer, so findings point at the line to change.

While the model is built, `nn.Module.__init__` is wrapped: each new module records the first
stack frame outside torch, gradlint and the module's own constructors. That is the line with
`self.fc = nn.Linear(...)` (or `nn.Linear(...)` inside an `nn.Sequential(...)` call).
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import os
import sys
import sysconfig
import weakref
from collections.abc import Iterator
from types import FrameType

from gradlint.findings import Location

_GRADLINT_DIR = os.path.dirname(os.path.abspath(__file__))
# Library code is never "the line to change": skip frames from the standard library and
# site-packages (torch, transformers, ...) unless nothing else is on the stack.
_LIBRARY_DIRS = tuple(
    {os.path.abspath(p) for p in (sysconfig.get_paths()["stdlib"], sysconfig.get_paths()["purelib"],
                                  sysconfig.get_paths()["platlib"]) if p}
)


@functools.cache
def _library_dirs() -> tuple[str, ...]:
    # torch may live outside the interpreter's site-packages (user site, a venv overlay).
    import torch

    return (*_LIBRARY_DIRS, os.path.dirname(os.path.abspath(torch.__file__)))


def is_library_file(filename: str) -> bool:
    if filename.startswith("<"):
        return True
    path = os.path.abspath(filename)
    return path.startswith(_GRADLINT_DIR) or path.startswith(_library_dirs())


def frame_location(frame: FrameType) -> Location:
    """The 1-based line and column of the call currently executing in `frame`."""
    line, col = frame.f_lineno, 1
    positions = list(frame.f_code.co_positions())
    index = frame.f_lasti // 2
    if 0 <= index < len(positions):
        start_line, _end_line, start_col, _end_col = positions[index]
        if start_line is not None:
            line = start_line
        if start_col is not None:
            col = start_col + 1
    return Location(display_path(frame.f_code.co_filename), line, col)


def user_frame(start: FrameType | None, skip_self: object = None) -> FrameType | None:
    """The innermost frame that is user code (outside libraries and `skip_self`'s constructors)."""
    frame, fallback = start, None
    while frame is not None:
        in_own_init = skip_self is not None and frame.f_locals.get("self") is skip_self
        if not in_own_init:
            if fallback is None and not frame.f_code.co_filename.startswith(_GRADLINT_DIR):
                fallback = frame
            if not is_library_file(frame.f_code.co_filename):
                return frame
        frame = frame.f_back
    return fallback


# The folder paths print relative to: the working directory, or the one gradlint started in when
# a worker pins it (pin_display_root), so a model file that calls os.chdir moves nothing.
_display_root: str | None = None


def pin_display_root(directory: str) -> None:
    global _display_root
    _display_root = directory


def display_path(filename: str) -> str:
    """Paths under the working directory print relative to it, as ruff and flake8 do."""
    root = _display_root or os.getcwd()
    absolute = os.path.normpath(os.path.join(root, filename))
    try:
        relative = os.path.relpath(absolute, root)
    except ValueError:  # another drive on Windows
        return absolute
    return absolute if relative.startswith("..") else relative


class Sites:
    """Construction sites: module -> Location, and module -> the module whose __init__ built it."""

    def __init__(self) -> None:
        self.locations: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self.owners: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    def get(self, module: object) -> Location | None:
        return self.locations.get(module)


@contextlib.contextmanager
def record_construction_sites() -> Iterator[Sites]:
    """Record, for every nn.Module constructed inside the block, where the user constructed it."""
    import torch.nn as nn

    sites = Sites()
    original_init = nn.Module.__init__

    def recording_init(self, *args, **kwargs):
        original_init(self, *args, **kwargs)
        if self not in sites.locations:
            frame = user_frame(sys._getframe(1), skip_self=self)
            if frame is not None:
                sites.locations[self] = frame_location(frame)
                owner = frame.f_locals.get("self")
                if isinstance(owner, nn.Module):
                    sites.owners[self] = owner

    nn.Module.__init__ = recording_init
    try:
        yield sites
    finally:
        nn.Module.__init__ = original_init


def class_location(obj: object) -> Location | None:
    """The `class X(nn.Module):` line of an object's class, when its source is available."""
    cls = obj if isinstance(obj, type) else type(obj)
    try:
        filename = inspect.getsourcefile(cls)
    except TypeError:  # a built-in class
        return None
    # Library classes are ruled out by their file before their line is looked up: finding a
    # class's line parses its whole module (Python 3.11's class finder walks the AST), ~18 ms
    # for each torch.nn class, paid for every module built inside library code (a
    # TransformerEncoderLayer's Linear and LayerNorm).
    if filename is None or is_library_file(filename):
        return None
    try:
        _, line = inspect.getsourcelines(cls)
    except (OSError, TypeError):
        return None
    return Location(display_path(filename), line, 1)
