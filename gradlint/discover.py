"""Turn command-line PATH arguments into lint targets, without importing torch.

Forms: `model.py`, `dir/` (recursive), `model.py::NAME`, `model.onnx`, `pkg.module:NAME`.
A directory scan keeps a .py file only when a cheap source check says it may hold a model,
so pre-commit can pass every staged file and pay nothing for files without one.
"""

from __future__ import annotations

import fnmatch
import os
import re
import subprocess
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
# Never scanned unless `exclude` replaces the list: version control, environments, caches and
# build output (ruff's default list, plus `build` and `.eggs`).
DEFAULT_EXCLUDE = (".bzr", ".direnv", ".eggs", ".git", ".git-rewrite", ".hg", ".ipynb_checkpoints", ".mypy_cache",
                   ".nox", ".pants.d", ".pyenv", ".pytest_cache", ".pytype", ".ruff_cache", ".svn", ".tox",
                   ".venv", ".vscode", "__pycache__", "__pypackages__", "_build", "buck-out", "build", "dist",
                   "node_modules", "site-packages", "venv", "*.egg-info")
_IMPORT_STRING = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


@dataclass(frozen=True)
class Exclusions:
    """Which paths a run passes over, as ruff's `exclude`, `extend-exclude`, `force-exclude` and
    `respect-gitignore` settings say. Patterns are globs relative to `root` (the configuration's
    folder); one without a slash matches a file or folder of that name anywhere."""

    patterns: tuple[str, ...] = DEFAULT_EXCLUDE
    root: str = "."
    force: bool = False  # also pass over paths named on the command line (pre-commit names every file)
    respect_gitignore: bool = True  # pass over what git ignores (.gitignore, .git/info/exclude, global)

    def matches(self, path: str) -> bool:
        """Whether a pattern matches `path` itself: what a scan asks of each folder and file it
        meets (the folders above were asked on the way down, or were named by the user)."""
        return any(glob_match(p, self.root, path) for p in self.patterns)

    def excludes(self, path: str) -> bool:
        """Whether `path`, or a folder it lies in under `root`, matches a pattern: what
        --force-exclude asks of a path named on the command line."""
        relative = os.path.relpath(os.path.abspath(path), os.path.abspath(self.root)).replace(os.sep, "/")
        if relative.startswith("../"):
            return self.matches(path)
        parts = relative.split("/")
        return any(self.matches(os.path.join(self.root, *parts[:end])) for end in range(1, len(parts) + 1))


def glob_match(pattern: str, root: str, path: str) -> bool:
    """ruff-style: the pattern matches the path relative to `root`; a pattern without a slash also
    matches the file or folder name alone; `**/` may match no folder."""
    relative = os.path.relpath(os.path.abspath(path), os.path.abspath(root)).replace(os.sep, "/")
    candidates = [relative] if not relative.startswith("../") else []
    if "/" not in pattern.rstrip("/"):
        candidates.append(os.path.basename(os.path.normpath(path)))
    pattern = pattern.rstrip("/")
    patterns = [pattern, pattern[3:]] if pattern.startswith("**/") else [pattern]
    return any(fnmatch.fnmatchcase(c, p) for c in candidates for p in patterns)


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


def expand(arguments: list[str], skip_non_models: bool = False, exclusions: Exclusions = Exclusions()
           ) -> list[Target]:
    """Targets for the given arguments, in order, each file once. Never raises for a bad path:
    a path that cannot be linted becomes a Target with its `error`.

    A .py file named explicitly is linted even when the cheap check finds no model (the loader
    then reports it), unless `skip_non_models`: pre-commit names every staged file, and each is
    then kept or skipped as a directory scan would. Exclusions apply to what a directory scan
    finds, and to named paths too with `exclusions.force`.
    """
    targets: list[Target] = []
    for argument in arguments:
        named = _expand_one(argument, exclusions)
        if exclusions.force:
            named = [t for t in named if t.kind == "import" or not exclusions.excludes(t.path)]
            named = _without_gitignored(named, exclusions)
        for target in named:
            if skip_non_models and target.kind == "python" and target.name is None:
                target = _scanned_python_file(target.path)
            if target is not None:
                targets.append(target)
    unique: dict[Target, None] = dict.fromkeys(targets)
    return list(unique)


def _expand_one(argument: str, exclusions: Exclusions) -> list[Target]:
    path, sep, name = argument.partition("::")
    # Every line names a file the same way, as ruff does: relative to the working directory when
    # under it (`./x.py` and `/home/me/proj/x.py` both print as x.py), else absolute.
    path = display_path(path) if path else path
    if os.path.isdir(path) and not sep:
        return _scan_directory(path, exclusions)
    if path.endswith(".onnx"):
        return [Target(path, None, "onnx", error=sources.file_problem(path))]
    # lexists: a broken link or a link loop is a path the user named, reported as such.
    if path.endswith(".py") or os.path.lexists(path):
        return [Target(path, name or None, "python", error=sources.source_problem(path))]
    if _IMPORT_STRING.match(argument):
        return [Target(argument, argument.partition(":")[2], "import")]
    return [Target(path, name or None, "python", error="no such file or directory")]


def _scan_directory(root: str, exclusions: Exclusions) -> list[Target]:
    """The model files under `root`, less the excluded and (by default) the git-ignored ones.
    Symbolic links to directories are not followed (as git and ruff do not): a link back to an
    ancestor would loop forever, and one to elsewhere lints files outside the tree. Links to files
    are followed, then judged like the file itself."""
    found: list[Target] = []
    for directory, subdirs, files in os.walk(root, followlinks=False):
        # Named on the command line, `root` is scanned even when excluded (unless --force-exclude
        # dropped it before): only what the scan meets below it is asked.
        subdirs[:] = sorted(d for d in subdirs if not exclusions.matches(os.path.join(directory, d)))
        for filename in sorted(files):
            path = os.path.normpath(os.path.join(directory, filename))  # `gradlint .` prints x.py, not ./x.py
            if not filename.endswith((".onnx", ".py")) or exclusions.matches(path):
                continue
            target = _scanned_onnx_file(path) if filename.endswith(".onnx") else _scanned_python_file(path)
            if target is not None:
                found.append(target)
    return _without_gitignored(found, exclusions)


def _without_gitignored(targets: list[Target], exclusions: Exclusions) -> list[Target]:
    """`targets` less the files git ignores, asked of git itself (`git check-ignore`), which knows
    every .gitignore, .git/info/exclude and the global excludes file; outside a repository, or
    without git, nothing is ignored. Tracked files are never ignored, as in git."""
    files = [t for t in targets if t.kind != "import"]
    if not exclusions.respect_gitignore or not files:
        return targets
    paths = [os.path.abspath(t.path) for t in files]
    try:  # from the files' common folder: git answers for the repository that folder is in
        answer = subprocess.run(["git", "check-ignore", "-z", "--stdin"], capture_output=True, timeout=60,
                                cwd=os.path.dirname(os.path.commonpath(paths)) if len(paths) == 1
                                else os.path.commonpath(paths),
                                input="\0".join(paths).encode())
    except (OSError, subprocess.SubprocessError):
        return targets
    if answer.returncode not in (0, 1):  # 128: not a repository, or a path outside it
        return targets
    ignored = {os.path.abspath(p) for p in answer.stdout.decode(errors="surrogateescape").split("\0") if p}
    return [t for t in targets if t.kind == "import" or os.path.abspath(t.path) not in ignored]


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
