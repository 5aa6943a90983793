"""What `cps quickstart` runs: `cps server` in a process of its own, and waits on its API."""

from __future__ import annotations

import json
import selectors
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..client import ServerClient
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


def until(client: ServerClient, path: str, done: Callable[[Any], bool], what: str,
          stop: threading.Event) -> Any:
    """GET `path` until `done` says yes of its answer, which is returned."""
    deadline = time.monotonic() + DEADLINE
    while not done(answer := client.get(path)):
        if time.monotonic() > deadline:
            raise CPSError(f"timed out waiting for {what}",
                           hint="The server's log (server.log) may say why.")
        time.sleep(POLL_EVERY)
        if stop.is_set():
            raise Stopped
    return answer
