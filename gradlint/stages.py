"""Where the linting of one target is: the stage a time limit or a crash is reported in.

The pipeline announces each stage it enters (`enter("import", user_code=True)`,
`enter("build_model()", user_code=True)`, `enter("rule GL604")`); a worker process forwards the
announcements to the parent, which names the last one when the target runs out of time or
memory, or its process dies. `user_code` marks the stages that run the model file's own code
for their whole length (importing it, calling its functions): before gradlint's own stages the
worker undoes what that code did to the process, such as a change of working directory.
Outside a worker nobody listens and an announcement costs one attribute lookup.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

_listener: Callable[[str, bool], None] | None = None


def enter(stage: str, *, user_code: bool = False) -> None:
    """Announce that the target's linting enters `stage` (a few words a user recognises)."""
    if _listener is not None:
        _listener(stage, user_code)


@contextlib.contextmanager
def listening(listener: Callable[[str, bool], None]) -> Iterator[None]:
    """Send every announcement made inside the block to `listener`."""
    global _listener
    previous, _listener = _listener, listener
    try:
        yield
    finally:
        _listener = previous
