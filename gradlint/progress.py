"""Progress of a long run on a terminal: targets done of all, the one running and its stage,
the time so far. Drawn on stderr by tqdm (PyTorch Lightning's default progress bar, so it looks
the way ML engineers expect), only when stderr is a terminal and only after a second, so short
runs, pre-commit, CI logs and `-q` see nothing. Output written while the bar shows goes through
`write`, which lifts the bar out of the way first.
"""

from __future__ import annotations

import sys

import click

_DELAY = 1.0  # seconds before the bar appears: a run that ends sooner never shows one


class Progress:
    def __init__(self, total: int, enabled: bool) -> None:
        self.total = total
        self.enabled = enabled and total > 0
        self.bar = None
        self.labels: dict[int, str] = {}  # index -> the target's label
        self.running: dict[int, str] = {}  # index -> "label: stage", for the targets running now

    def __enter__(self) -> Progress:
        if self.enabled:
            from tqdm import tqdm

            self.bar = tqdm(total=self.total, desc="gradlint", unit="target", file=sys.stderr, leave=False,
                            dynamic_ncols=True, delay=_DELAY)
        return self

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.close()

    def update(self, kind: str, index: int, detail: str) -> None:
        """runner.run's event handler: a target started, entered a stage, or finished."""
        if self.bar is None:
            return
        if kind == "start":
            self.labels[index] = self.running[index] = detail
        elif kind == "stage":
            self.running[index] = f"{self.labels[index]}: {detail}"
        elif kind == "done":
            self.running.pop(index, None)
            self.bar.update(1)
        shown = next(iter(self.running.values()), "")
        self.bar.set_postfix_str(shown, refresh=False)

    def write(self, text: str, err: bool = False) -> None:
        if not text:
            return
        if self.bar is None:
            click.echo(text, nl=False, err=err, color=True)  # colour, if any, was chosen with the palette
            return
        from tqdm import tqdm

        tqdm.write(text, file=sys.stderr if err else sys.stdout, end="")
