"""Open a page in headless Chromium and report what a reader's browser would: the errors it logged,
the requests it made, values computed in the page, and screenshots.

The DevTools protocol runs over a pipe (`--remote-debugging-pipe`: commands on the browser's file
descriptor 3, replies and events on 4, one JSON message per NUL-terminated record), so nothing
beyond the standard library and Debian's `chromium` package is needed: no websocket client,
no driver binary, no port. tests/test_html_report.py checks the HTML report with it and
docs/screenshots.py takes the pictures in docs/.
"""

from __future__ import annotations

import base64
import json
import os
import select
import shutil
import signal
import tempfile
import time
from pathlib import Path
from typing import Any

NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find() -> str | None:
    """The Chromium executable on PATH, or None."""
    return next((path for path in map(shutil.which, NAMES) if path), None)


class BrowserError(RuntimeError):
    pass


class Page:
    """One headless Chromium with one page, `width` CSS pixels wide. Use as a context manager."""

    def __init__(self, executable: str, width: int = 1000, height: int = 800, timeout: float = 30.0) -> None:
        self.timeout = timeout
        self.events: list[dict] = []
        self._next_id = 0
        self._buffer = b""
        self._profile = tempfile.mkdtemp(prefix="gradlint-chromium-")
        commands_read, self._commands = os.pipe()
        self._replies, replies_write = os.pipe()
        devnull = os.open(os.devnull, os.O_RDWR)
        # os.pipe's descriptors close on exec; the dup2 actions give the browser its two ends at
        # the numbers the protocol fixes (3 and 4), and silence its own logging.
        actions = [(os.POSIX_SPAWN_DUP2, devnull, 0), (os.POSIX_SPAWN_DUP2, devnull, 1),
                   (os.POSIX_SPAWN_DUP2, devnull, 2), (os.POSIX_SPAWN_DUP2, commands_read, 3),
                   (os.POSIX_SPAWN_DUP2, replies_write, 4)]
        arguments = [executable, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                     "--no-default-browser-check", "--disable-extensions", "--hide-scrollbars",
                     "--remote-debugging-pipe", f"--user-data-dir={self._profile}", "about:blank"]
        # --no-sandbox: CI runs as root, where Chromium refuses its sandbox; the pages are our own.
        self._pid = os.posix_spawn(executable, arguments, os.environ, file_actions=actions)
        for descriptor in (commands_read, replies_write, devnull):
            os.close(descriptor)
        target = self._call("Target.createTarget", {"url": "about:blank"})["targetId"]
        self._session = self._call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.call(f"{domain}.enable")
        self.call("Emulation.setDeviceMetricsOverride",
                  {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})

    def __enter__(self) -> Page:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- what a test asks ---------------------------------------------------------------------
    def open(self, path: Path) -> None:
        """Load a local file and wait for its load event."""
        self.events.clear()
        self.call("Page.navigate", {"url": Path(path).resolve().as_uri()})
        self._wait_for("Page.loadEventFired")

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (JSON-serializable)."""
        result = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        if "exceptionDetails" in result:
            raise BrowserError(f"{expression!r} raised: {result['exceptionDetails'].get('text')}")
        return result["result"].get("value")

    def errors(self) -> list[str]:
        """What the page logged as an error: console.error calls, uncaught exceptions, and the
        browser's own error entries (a resource that failed to load, a blocked request)."""
        found = []
        for event in self.events:
            method, params = event.get("method"), event.get("params", {})
            if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
                found.append("console: " + " ".join(str(a.get("value", a.get("description"))) for a in params["args"]))
            elif method == "Runtime.exceptionThrown":
                found.append("exception: " + params["exceptionDetails"].get("text", ""))
            elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
                found.append(f"log: {params['entry'].get('text')} ({params['entry'].get('url', '')})")
        return found

    def requests(self) -> list[str]:
        """The URL of every request the page made since it was opened (the page itself included)."""
        return [e["params"]["request"]["url"] for e in self.events if e.get("method") == "Network.requestWillBeSent"]

    def screenshot(self, path: Path, selector: str | None = None) -> tuple[int, int]:
        """A PNG of the element `selector` matches (the whole page without one); its CSS size."""
        box = self.evaluate(
            "(() => { const e = %s; const r = e.getBoundingClientRect();"
            " return [r.left + scrollX, r.top + scrollY, r.width, r.height]; })()"
            % (f"document.querySelector({json.dumps(selector)})" if selector else "document.documentElement"))
        x, y, width, height = box
        clip = {"x": x, "y": y, "width": width, "height": height, "scale": 1}
        data = self.call("Page.captureScreenshot", {"format": "png", "clip": clip, "captureBeyondViewport": True})
        Path(path).write_bytes(base64.b64decode(data["data"]))
        return round(width), round(height)

    def close(self) -> None:
        if self._pid is None:
            return
        try:
            self._call("Browser.close")
        except (BrowserError, OSError):
            pass
        finally:
            os.close(self._commands)
            os.close(self._replies)
            deadline = time.monotonic() + 10
            while os.waitpid(self._pid, os.WNOHANG) == (0, 0):  # still running
                if time.monotonic() > deadline:  # Browser.close went unanswered
                    os.kill(self._pid, signal.SIGKILL)
                    os.waitpid(self._pid, 0)
                    break
                time.sleep(0.05)
            self._pid = None
            shutil.rmtree(self._profile, ignore_errors=True)

    # -- the protocol ---------------------------------------------------------------------------
    def call(self, method: str, params: dict | None = None) -> dict:
        """A command to the page's session; its result."""
        return self._call(method, params, self._session)

    def _call(self, method: str, params: dict | None = None, session: str | None = None) -> dict:
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params or {}}
        if session is not None:
            message["sessionId"] = session
        os.write(self._commands, json.dumps(message).encode() + b"\0")
        while True:
            reply = self._receive()
            if reply.get("id") == message["id"]:
                if "error" in reply:
                    raise BrowserError(f"{method}: {reply['error'].get('message')}")
                return reply.get("result", {})
            if "method" in reply:
                self.events.append(reply)

    def _wait_for(self, method: str) -> dict:
        while True:
            event = self._receive()
            if "method" in event:
                self.events.append(event)
                if event["method"] == method:
                    return event

    def _receive(self) -> dict:
        deadline = time.monotonic() + self.timeout
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._replies], [], [], left)[0]:
                raise BrowserError(f"Chromium sent nothing for {self.timeout:g} s")
            chunk = os.read(self._replies, 1 << 20)
            if not chunk:
                raise BrowserError("Chromium closed the DevTools pipe (it exited)")
            self._buffer += chunk
        record, _, self._buffer = self._buffer.partition(b"\0")
        return json.loads(record)
