"""The user's source, for fixes that quote it: a file's syntax tree, the expression a trace node's
location points at, and that line with the expression replaced.

Op nodes carry the source location of the user's call (line and the column where the
expression starts), so a fix can quote the user's own expression with the change applied.
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Callable

from gradlint.findings import Location


@functools.lru_cache(maxsize=32)
def parsed_source(path: str) -> tuple[str, ast.Module] | None:
    """A file's text and syntax tree (cached); None when it cannot be read or parsed."""
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
        return text, ast.parse(text)
    except (OSError, SyntaxError, ValueError):
        return None


def expression_at(location: Location, accept: Callable[[ast.AST], bool]) -> tuple[ast.AST, str] | None:
    """The outermost expression starting at `location` that `accept`s, with the file's text."""
    parsed = parsed_source(location.path)
    if parsed is None:
        return None
    text, tree = parsed
    candidates = [node for node in ast.walk(tree) if isinstance(node, ast.expr)
                  and node.lineno == location.line and node.col_offset == location.col - 1 and accept(node)]
    if not candidates:
        return None
    outermost = max(candidates, key=lambda node: (node.end_lineno, node.end_col_offset))
    return outermost, text


def segment(text: str, node: ast.AST) -> str:
    return ast.get_source_segment(text, node) or ""


def replace_in_line(location: Location, node: ast.AST, text: str, replacement: str) -> str | None:
    """The source line at `location` with `node` (a single-line expression) replaced."""
    if node.lineno != node.end_lineno:
        return None
    line = text.splitlines()[node.lineno - 1]
    rest = line[node.end_col_offset:]
    if "#" in rest and not any(quote in rest for quote in "'\""):  # drop the line's trailing comment
        rest = rest[:rest.index("#")]
    return (line[:node.col_offset] + replacement + rest).strip()


def call_name(node: ast.AST) -> str | None:
    """`log` for torch.log(x), x.log() and log(x)."""
    if not isinstance(node, ast.Call):
        return None
    if isinstance(node.func, ast.Attribute):
        return node.func.attr
    return getattr(node.func, "id", None)


def call_argument(node: ast.Call) -> ast.AST | None:
    """The tensor a call applies to: torch.f(x) -> x; x.f() -> x."""
    if isinstance(node.func, ast.Attribute) and not node.args:
        return node.func.value
    return node.args[0] if node.args else None
