"""What `cps quickstart` runs and talks to: `cps server` in a process of its own, and its API."""

from __future__ import annotations

import json
import selectors
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import CPSError

DEADLINE = 120.0  # seconds the server has to get somewhere before the quickstart gives up
POLL_EVERY = 0.1  # seconds between two looks at something the quickstart waits for


class Stopped(Exception):
    """Ctrl-C or SIGTERM came while the quickstart waited: it stops the server and ends."""


class ServerProcess:
    """`cps server --config CONFIG` in a session of its own, logging to LOG: Ctrl-C at the
    terminal reaches only the quickstart, which stops the server with SIGTERM (`terminate`)."""

    def __init__(self, config: Path, log: Path) -> None:
        self.config = config
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, stop: threading.Event) -> dict[str, Any]:
        """Start the server; the JSON line it prints once it is ready (where it listens)."""
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "cps", "server", "--config", str(self.config)],
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log,
                start_new_session=True)
        line = self._first_line(stop)
        if not line:
            raise CPSError("the server did not start", hint=f"Its log, {self.log}, says why.")
        ready: dict[str, Any] = json.loads(line)
        return ready

    def _first_line(self, stop: threading.Event) -> bytes:
        assert self.process is not None and self.process.stdout is not None
        deadline = time.monotonic() + DEADLINE
        with selectors.DefaultSelector() as selector:
            selector.register(self.process.stdout, selectors.EVENT_READ)
            while not selector.select(POLL_EVERY):
                if stop.is_set():
                    raise Stopped
                if time.monotonic() > deadline:
                    return b""
        return self.process.stdout.readline()  # the line, or b"" if the server ended

    def terminate(self) -> None:
        """Ask the server to stop (SIGTERM), if it runs; safe in a signal handler."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)

    def wait(self) -> int:
        """Wait for the server to end; its exit status."""
        if self.process is None:
            return 0
        status = self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()
        return status

    def finish(self) -> int:
        """Stop the server, if it runs, and wait for it; its exit status."""
        self.terminate()
        return self.wait()


class Api:
    """The server's HTTP API, with a bearer token."""

    def __init__(self, url: str, token: str, stop: threading.Event, log: Path) -> None:
        self.url = url
        self.token = token
        self.stop = stop
        self.hint = f"The server's log, {log}, may say why."

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        """The JSON answer to `method path` (with `body` as JSON); a CPSError for a problem."""
        request = urllib.request.Request(
            self.url + path, method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {self.token}",
                     "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=DEADLINE) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as error:
            problem = json.loads(error.read() or b"{}")
            raise CPSError(f"{method} {path}: {problem.get('detail', error.reason)}",
                           hint=problem.get("hint")) from None
        except urllib.error.URLError as error:
            if self.stop.is_set():
                raise Stopped from None
            raise CPSError(f"the server does not answer at {self.url}: {error.reason}",
                           hint=self.hint) from None

    def until(self, path: str, done: Callable[[Any], bool], what: str) -> Any:
        """GET `path` until `done` says yes of its answer, which is returned."""
        deadline = time.monotonic() + DEADLINE
        while not done(answer := self.call("GET", path)):
            if time.monotonic() > deadline:
                raise CPSError(f"timed out waiting for {what}", hint=self.hint)
            time.sleep(POLL_EVERY)
            if self.stop.is_set():
                raise Stopped
        return answer
