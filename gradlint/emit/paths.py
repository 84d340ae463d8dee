"""Paths as CI services want them: relative to the repository root, with forward slashes."""

from __future__ import annotations

import os
import pathlib


def repo_root() -> str:
    """The nearest folder at or above the working directory holding `.git`; else the working
    directory (GitHub Actions checks out at the repository root and runs from there)."""
    directory = os.getcwd()
    while True:
        if os.path.exists(os.path.join(directory, ".git")):
            return directory
        parent = os.path.dirname(directory)
        if parent == directory:
            return os.getcwd()
        directory = parent


def repo_path(path: str, root: str) -> str:
    """`path` relative to `root` in forward slashes; a file:// URI when it lies outside."""
    absolute = os.path.abspath(path)
    relative = os.path.relpath(absolute, root) if os.path.splitdrive(absolute)[0] == os.path.splitdrive(root)[0] \
        else ".."
    if relative.startswith(".."):
        return pathlib.Path(absolute).as_uri()
    return relative.replace(os.sep, "/")
