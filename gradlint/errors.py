"""Errors that end the linting of one target and become a one-line report (exit code 2)."""

from __future__ import annotations


class GradlintError(Exception):
    """Base class: a problem gradlint reports to the user rather than crashing on."""


class UsageError(GradlintError):
    """Bad command-line options or configuration (exit code 2 for the whole run)."""


class LoadError(GradlintError):
    """A target could not be loaded, built, traced or probed.

    The message names the cause in one line; the CLI adds the file. Other targets of the
    same run are still linted.
    """


class NoModel(LoadError):
    """The file defines no model gradlint can build by itself (only layers that need constructor
    arguments, parameter-free modules, or no module at all): it is skipped and counted, never an
    error, unless a factory was named."""
