"""The parent side of isolation: lint every target in a worker process, within its limits.

Workers are forked from a fork server (multiprocessing's "forkserver" start method) that has
imported torch, the pipeline and the rules once (gradlint.warm), so a worker costs a fork
rather than a torch import, and gradlint's own process never imports torch at all. Each target
gets a fresh worker: whatever its model file does to the process dies with it (gradlint.worker).

The parent watches each worker and turns every way a target can fail into that target's
one-line error, naming the stage the worker last announced (gradlint.stages):
- past the time limit (`--timeout`), or past the memory limit (`--max-memory`, resident memory
  of the worker), the worker and the processes it started are killed;
- when the machine itself runs short of memory, the largest worker is killed before the kernel's
  out-of-memory killer picks a process, which might be gradlint's own;
- a worker that dies (a segfault, `os._exit`) is named with its signal or exit code;
- a worker that prints without end is stopped at OUTPUT_LIMIT.
Reports come back in the order of the targets, each as soon as it and every one before it have
finished, so output streams and is the same whatever the number of parallel workers.
"""

from __future__ import annotations

import dataclasses
import functools
import multiprocessing
import multiprocessing.connection
import os
import signal
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from gradlint.findings import ModelReport
from gradlint.worker import Job, main

# The slowest corpus case lints in 5 s and the slowest sample in under 7 s, process start
# included; a 27M-parameter Transformer takes ~16 s (BENCHMARKS.md). Ten minutes leaves room for
# models far larger than those and for --thorough, while a hung model file still ends a CI job
# well before a typical job limit (GitHub's is six hours).
DEFAULT_TIMEOUT = 600.0
OUTPUT_LIMIT = 64 * 2**20  # bytes a worker may print before it is stopped
SHOWN_OUTPUT = 2**20  # the tail of the output -v shows
# When less than this share of the machine's memory is available, the largest worker is killed.
LOW_MEMORY = 0.03
_POLL = 0.1  # seconds between checks of memory and output size


@dataclass(frozen=True)
class Limits:
    """What one target may spend. None: no limit."""

    timeout: float | None = DEFAULT_TIMEOUT  # seconds of wall time
    max_memory: int | None = None  # bytes of resident memory


@dataclass(frozen=True)
class Outcome:
    """A finished target: its report, what its model code printed, and how long it took."""

    index: int
    report: ModelReport
    output: str
    seconds: float


# Called as on_event(kind, index, detail) with kind "start", "stage" (detail: the stage) or "done".
EventHandler = Callable[[str, int, str], None]


def run(jobs: Sequence[Job], parallel: int = 1, limits: Limits = Limits(), preload: Sequence[str] = (),
        on_event: EventHandler | None = None) -> Iterator[Outcome]:
    """Lint each job in a worker of its own, `parallel` at a time, and yield the outcomes in the
    jobs' order. Closing the generator (or an exception, Ctrl-C included) kills every worker."""
    context = _context(("gradlint.warm", *preload))
    notify = on_event or (lambda kind, index, detail: None)
    waiting = list(range(len(jobs)))[::-1]  # popped from the end: first job first
    running: dict[int, _Worker] = {}
    finished: dict[int, Outcome] = {}
    next_out = 0
    try:
        while next_out < len(jobs):
            while waiting and len(running) < max(1, parallel):
                index = waiting.pop()
                target = jobs[index].target
                notify("start", index, target.label)
                if target.error is not None:  # discovery already knows: no worker to start
                    finished[index] = Outcome(index, ModelReport(target.label, target.path, error=target.error), "", 0.0)
                    notify("done", index, target.label)
                    continue
                running[index] = _Worker.start(context, jobs[index], index)
            _wait(running.values(), _next_deadline(running.values(), limits))
            for index, worker in list(running.items()):
                for stage in worker.receive():
                    notify("stage", index, stage)
                report = worker.report or _check_limits(worker, running, limits)
                if report is not None:
                    del running[index]
                    finished[index] = worker.finish(report)
                    notify("done", index, report.target)
            while next_out in finished:
                yield finished.pop(next_out)
                next_out += 1
    finally:
        for worker in running.values():
            worker.kill()
            worker.discard()


@functools.cache
def _context(preload: tuple[str, ...]) -> multiprocessing.context.BaseContext:
    """The fork server's context; its preload list is read once, when the server starts. Where
    there is no fork server (Windows), each worker is a fresh interpreter that imports torch."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(list(preload))
    return context


class _Worker:
    """One worker process and what the parent knows of it."""

    def __init__(self, process, connection, job: Job, index: int) -> None:
        self.process = process
        self.connection = connection
        self.job = job
        self.index = index
        self.started = time.monotonic()
        self.stage = "start"
        self.report: ModelReport | None = None
        self.closed = False

    @classmethod
    def start(cls, context, job: Job, index: int) -> _Worker:
        handle, output_path = tempfile.mkstemp(prefix="gradlint-output-", suffix=".txt")
        os.close(handle)
        job = dataclasses.replace(job, output_path=output_path)
        receiver, sender = context.Pipe(duplex=False)
        process = context.Process(target=main, args=(sender, job), name=f"gradlint-worker-{index}")
        process.start()
        sender.close()  # the worker holds the only sending end: its death closes the pipe
        return cls(process, receiver, job, index)

    def receive(self) -> list[str]:
        """Read what the worker sent: the stages it entered (returned), and its report."""
        stages = []
        while not self.closed:
            try:
                if not self.connection.poll():
                    break
                kind, value = self.connection.recv()
            except (EOFError, OSError):
                self.closed = True
                break
            if kind == "stage":
                self.stage = value
                stages.append(value)
            elif kind == "report":
                self.report = value
        return stages

    @property
    def dead(self) -> bool:
        return self.process.exitcode is not None

    def failed(self, cause: str) -> ModelReport:
        return ModelReport(target=self.job.target.label, path=self.job.target.path, error=cause)

    def died(self) -> ModelReport:
        code = self.process.exitcode
        if code is not None and code < 0:
            name = _signal_name(-code)
            hint = " (out of memory?)" if -code == signal.SIGKILL else ""
            return self.failed(f"worker crashed: {name} during {self.stage}{hint}")
        return self.failed(f"the model's code ended the process (exit code {code}, e.g. os._exit) "
                           f"during {self.stage}")

    def rss(self) -> int:
        """Resident memory of the worker, in bytes (0 when unknown)."""
        try:
            with open(f"/proc/{self.process.pid}/statm") as handle:
                return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, ValueError, IndexError):
            return 0

    def output_size(self) -> int:
        try:
            return os.stat(self.job.output_path).st_size
        except OSError:
            return 0

    def kill(self) -> None:
        """Kill the worker and every process of its session (it called setsid first)."""
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError, AttributeError):
            pass  # not yet its own group leader, or gone; no process groups on Windows
        try:
            self.process.kill()
        except (ProcessLookupError, ValueError, AttributeError):
            pass

    def finish(self, report: ModelReport) -> Outcome:
        self.kill()  # the report is in: whatever the model file left running ends here
        self.process.join()
        outcome = Outcome(self.index, report, self._output(), time.monotonic() - self.started)
        self.discard()
        return outcome

    def discard(self) -> None:
        self.connection.close()
        try:
            os.unlink(self.job.output_path)
        except OSError:
            pass

    def _output(self) -> str:
        try:
            with open(self.job.output_path, "rb") as handle:
                size = handle.seek(0, os.SEEK_END)
                handle.seek(max(0, size - SHOWN_OUTPUT))
                text = handle.read().decode("utf-8", errors="replace")
        except OSError:
            return ""
        if size > SHOWN_OUTPUT:
            text = f"[{size - SHOWN_OUTPUT} earlier bytes not shown]\n" + text
        return text


def _wait(workers, deadline: float | None) -> None:
    """Sleep until a worker sends something or exits, the next limit comes due, or _POLL passes."""
    workers = list(workers)
    handles = [w.connection for w in workers if not w.closed] + [w.process.sentinel for w in workers]
    timeout = _POLL if deadline is None else max(0.0, min(_POLL, deadline - time.monotonic()))
    multiprocessing.connection.wait(handles, timeout)


def _next_deadline(workers, limits: Limits) -> float | None:
    if limits.timeout is None:
        return None
    return min((w.started + limits.timeout for w in workers), default=None)


def _check_limits(worker: _Worker, running: dict[int, _Worker], limits: Limits) -> ModelReport | None:
    """The error that ends this worker now, if any; None while it may go on."""
    if worker.dead:
        worker.receive()  # a report sent just before exiting is still in the pipe
        return worker.report or worker.died()
    cause = None
    elapsed = time.monotonic() - worker.started
    if limits.timeout is not None and elapsed >= limits.timeout:
        cause = f"timed out after {limits.timeout:g} s during {worker.stage} (--timeout)"
    elif limits.max_memory is not None and worker.rss() > limits.max_memory:
        cause = f"used more than {format_bytes(limits.max_memory)} of memory during {worker.stage} (--max-memory)"
    elif worker.output_size() > OUTPUT_LIMIT:
        cause = f"printed more than {format_bytes(OUTPUT_LIMIT)} during {worker.stage}"
    elif _machine_short_of_memory() and worker is max(running.values(), key=_Worker.rss):
        cause = (f"ran out of memory during {worker.stage}: the machine had under {LOW_MEMORY:.0%} of its memory "
                 f"left, {format_bytes(worker.rss())} of it in this target (lint it alone, or set --max-memory)")
    if cause is None:
        return None
    worker.kill()
    return worker.failed(cause)


def _machine_short_of_memory() -> bool:
    """Whether MemAvailable is under LOW_MEMORY of MemTotal (Linux; elsewhere never)."""
    try:
        with open("/proc/meminfo") as handle:
            fields = dict(line.split(":", 1) for line in handle)
        total = int(fields["MemTotal"].split()[0])
        available = int(fields["MemAvailable"].split()[0])
    except (OSError, KeyError, ValueError):
        return False
    return available < LOW_MEMORY * total


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def format_bytes(count: int) -> str:
    for unit, size in (("GB", 2**30), ("MB", 2**20), ("KB", 2**10)):
        if count >= size:
            return f"{count / size:.3g} {unit}"
    return f"{count} bytes"
