"""The child side of isolation: one target is linted in one process, and only its report leaves.

Model files are user code, and user code may exit, hang, print, segfault, or change global
torch state and the working directory. Each target therefore runs in a fresh process forked
from a server that has already imported torch and the pipeline (gradlint.runner starts it), so
none of that reaches another target, gradlint's output or its exit code:

- the process leads a session of its own: the parent kills it and whatever it started as one
  process group, and a Ctrl-C at the terminal reaches only the parent;
- its stdout and stderr (file descriptors 1 and 2, so C code and subprocesses too) go to a file
  the parent reads for `-v`, and stdin is /dev/null: `input()` ends instead of waiting;
- `sys.argv` is the model file alone, as when the user runs `python model.py`, so an argument
  parser at module level sees no gradlint options;
- SystemExit, KeyboardInterrupt and any other exception from user code become the target's
  one-line error, naming the stage it was in; a crash or `os._exit` is reported by the parent
  from the exit status;
- the report goes back over a pipe and the process ends with `os._exit`: atexit handlers and
  non-daemon threads that the model file started cannot keep it alive or print after it.

This module is imported by the parent too (its `main` is what the server runs), so it imports
nothing heavy at import time.
"""

from __future__ import annotations

import os
import signal
import sys
import traceback
from dataclasses import dataclass
from typing import Any

from gradlint import stages
from gradlint.discover import Target
from gradlint.engine import lint_target
from gradlint.findings import ModelReport
from gradlint.locations import pin_display_root


@dataclass(frozen=True)
class Job:
    """What one worker lints, and how."""

    target: Target
    settings: Any  # gradlint.engine.Settings
    overrides: Any  # gradlint.overrides.Overrides
    verbose: bool = False  # print tracebacks to the captured stderr, which -v shows
    # torch's intra-op threads. One, whatever the machine, the number of workers or of targets:
    # a reduction split over more threads sums in another order, which moves boundary
    # measurements (a risk by ~0.002 on the samples), and a file's verdict must not depend on
    # where or beside what it is linted. The corpus evaluation that fitted the risk ran one.
    threads: int = 1
    output_path: str = os.devnull  # where the worker's stdout and stderr go


def main(connection: Any, job: Job) -> None:
    """Lint `job` and send ("report", ModelReport) over `connection`; before that, ("stage", name)
    each time the pipeline enters a stage. Never returns."""
    if hasattr(os, "setsid"):  # POSIX; on Windows the parent kills the worker alone
        os.setsid()
    _bind_to_parent()
    _redirect_stdio(job.output_path)
    sys.argv = [job.target.path]
    home = os.getcwd()
    current = ["start"]

    def announce(stage: str, user_code: bool) -> None:
        if not user_code and os.getcwd() != home:
            os.chdir(home)  # the model file moved the process: gradlint's own paths are relative to home
        current[0] = stage
        connection.send(("stage", stage))

    try:
        import torch

        torch.set_num_threads(job.threads)
        pin_display_root(home)

        with stages.listening(announce):
            report = lint_target(job.target, job.settings, job.overrides, job.verbose)
    except BaseException as error:  # noqa: B036 - user code's SystemExit and KeyboardInterrupt end the target only
        if job.verbose:
            traceback.print_exception(error)
        report = ModelReport(target=job.target.label, path=job.target.path, error=exit_message(error, current[0]))
    try:
        connection.send(("report", report))
    except Exception as error:  # a report that does not pickle is gradlint's bug: still one line
        connection.send(("report", ModelReport(target=job.target.label, path=job.target.path,
                                               error=f"internal error: the report could not be sent: {error}")))
    _flush()
    os._exit(0)


def exit_message(error: BaseException, stage: str) -> str:
    """One line for a BaseException that escaped the pipeline: user code that called sys.exit or
    raised KeyboardInterrupt, or a failure of gradlint's own."""
    if isinstance(error, SystemExit):
        code = "" if error.code is None else repr(error.code)
        return f"the model's code called sys.exit({code}) during {stage}"
    if isinstance(error, KeyboardInterrupt):
        return f"the model's code raised KeyboardInterrupt during {stage}"
    first = (str(error).strip().splitlines() or [""])[0]
    return f"{type(error).__name__} during {stage}" + (f": {first}" if first else "")


def _bind_to_parent() -> None:
    """Linux: die with the fork server (which dies with gradlint), so that a worker can never
    outlive a gradlint that was killed outright; and be the process the kernel's out-of-memory
    killer takes first, rather than gradlint itself."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        with open("/proc/self/oom_score_adj", "w") as handle:
            handle.write("1000")
    except (OSError, AttributeError):  # not Linux: the parent's own cleanup still applies
        pass


def _redirect_stdio(path: str) -> None:
    """Point file descriptors 0, 1 and 2 away from the terminal and gradlint's own output."""
    stdin = os.open(os.devnull, os.O_RDONLY)
    output = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    _flush()
    os.dup2(stdin, 0)
    os.dup2(output, 1)
    os.dup2(output, 2)
    os.close(stdin)
    os.close(output)


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        try:
            stream.flush()
        except Exception:  # a stream the model's code replaced or closed
            pass
