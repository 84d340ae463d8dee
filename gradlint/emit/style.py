"""Colour for the text formats on a terminal, as ruff colours its output: the file in bold, the
code and severity by severity, a risk's level by level, `error` in red. The CLI picks a palette
(NO_COLOR and FORCE_COLOR decide before the terminal does); machine formats never colour."""

from __future__ import annotations

import os

import click

_SEVERITY = {"error": "red", "warning": "yellow", "info": "blue"}
_LEVEL = {"high": "red", "medium": "yellow", "low": "green"}


class Palette:
    """No colour: every method returns its text unchanged."""

    def path(self, text: str) -> str:
        return text

    def severity(self, text: str, severity: str) -> str:
        return text

    def level(self, text: str, level: str | None) -> str:
        return text

    def error(self, text: str) -> str:
        return text


class Colors(Palette):
    def path(self, text: str) -> str:
        return click.style(text, bold=True)

    def severity(self, text: str, severity: str) -> str:
        return click.style(text, fg=_SEVERITY.get(severity), bold=severity == "error")

    def level(self, text: str, level: str | None) -> str:
        return click.style(text, fg=_LEVEL.get(level or ""), bold=level == "high")

    def error(self, text: str) -> str:
        return click.style(text, fg="red", bold=True)


PLAIN = Palette()


def palette_for(stream, environ=os.environ) -> Palette:
    """Colour when `stream` is a terminal, unless NO_COLOR is set (no-color.org); FORCE_COLOR
    colours even a pipe (a CI log that renders ANSI)."""
    if environ.get("NO_COLOR"):
        return PLAIN
    if environ.get("FORCE_COLOR"):
        return Colors()
    isatty = getattr(stream, "isatty", None)
    return Colors() if isatty is not None and isatty() else PLAIN
