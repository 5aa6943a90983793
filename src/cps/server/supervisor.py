"""Protectors as child processes, one per configured database, kept running.

Each is `cps protect DB --repo REPO --db-id ID --json --report-durable` with the database's
settings: a process of its own, so that a protector that fails takes nothing else down, and capture
polls the WAL every few milliseconds with no API request competing for its interpreter. The
repository's passphrase, when there is one, reaches it in its environment (CPS_PASSPHRASE), read
from the configured file; never in its arguments.

Its events (JSON lines on its stdout) are read as they come and kept in the database's
`ProtectionState`; its stderr is logged, each line once, with the database named. A child that
exits is started again after a backoff (1 s, doubling up to 60 s; back to 1 s once a child has run
for a minute), and its exit is kept in the state, where status, metrics and the console show it.
`stop()` sends SIGTERM to every child (each makes what it captured durable and writes its status)
and waits for them. A server that dies without stopping them (SIGKILL, the OOM killer) leaves none
running: each child's standard input is a pipe the server holds open and never writes, and a child
stops as on SIGTERM once it ends (`--stop-at-end-of-input`), so a restarted server never finds the
last one's protectors still at work, unsupervised.
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from ..config import DatabaseSettings, Location, S3Location

logger = logging.getLogger(__name__)

BACKOFF_FIRST = 1.0
BACKOFF_MAX = 60.0
HEALTHY_AFTER = 60.0  # seconds of running after which the backoff starts again from the first
STOP_PATIENCE = 60.0  # seconds a child has to stop on SIGTERM before it is killed
ERRORS_KEPT = 20


@dataclass
class ProtectionState:
    """What the server knows of one database's protector, from its events and its exits."""

    db_id: str
    running: bool = False
    ready: bool = False  # a chain is being captured
    pid: int | None = None
    started_at: float | None = None  # time.time() of the current child's start
    restarts: int = 0
    chain: int | None = None
    last_txn: int | None = None
    durable_txn: int | None = None
    synced_through: int = 0  # ms: every commit before it is durable in the repository
    last_full: dict[str, Any] | None = None  # txn, time
    last_point: dict[str, Any] | None = None  # name, txn, time
    outage: str | None = None  # why the repository cannot be written, while it cannot
    last_exit: str | None = None
    errors: collections.deque[dict[str, Any]] = field(
        default_factory=lambda: collections.deque(maxlen=ERRORS_KEPT))
    error_totals: collections.Counter[str] = field(default_factory=collections.Counter)
    captured_bytes: int = 0  # of log written to the repository, by every child so far
    bytes_before_child: int = 0  # what the children before the current one wrote

    def error(self, kind: str, text: str) -> None:
        self.errors.append({"time": time.time(), "kind": kind, "message": text})
        self.error_totals[kind] += 1


@dataclass(frozen=True, slots=True)
class _DurableWaiter:
    committed_ms: int
    loop: asyncio.AbstractEventLoop
    answer: asyncio.Future[bool]


def _settle(answer: asyncio.Future[bool], durable: bool) -> None:
    if not answer.done():  # a wait that timed out is cancelled
        answer.set_result(durable)


class ProtectorChild:
    """One database's protector process, started again whenever it exits, until stopped."""

    def __init__(self, settings: DatabaseSettings, passphrase: str | None) -> None:
        self.settings = settings
        self.passphrase = passphrase
        self.state = ProtectionState(settings.id)
        self.lock = threading.Lock()  # over `state` and the waits for durability
        self._stop = threading.Event()
        self._durable_waiters: list[_DurableWaiter] = []
        self._process: subprocess.Popen[bytes] | None = None
        self._thread = threading.Thread(target=self._run, name=f"cps-protector-{settings.id}",
                                        daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        with self.lock:
            self._answer_durable()
        process = self._process
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
        self._thread.join(STOP_PATIENCE + 5)

    async def until_durable(self, committed_ms: int, timeout: float) -> bool:
        """Whether every commit made before `committed_ms` became durable within `timeout`,
        waited for on the caller's event loop (the state changes on this child's thread, which
        answers the wait when the protector reports it)."""
        loop = asyncio.get_running_loop()
        waiter = _DurableWaiter(committed_ms, loop, loop.create_future())
        with self.lock:
            if self.state.synced_through > committed_ms:
                return True
            if self._stop.is_set():
                return False
            self._durable_waiters.append(waiter)
        try:
            return await asyncio.wait_for(waiter.answer, timeout)
        except TimeoutError:
            return False
        finally:
            with self.lock:
                if waiter in self._durable_waiters:
                    self._durable_waiters.remove(waiter)

    def _answer_durable(self) -> None:
        """Under `lock`: answer the waits whose commits are durable now (all of them, no,
        once stopping)."""
        waiting = []
        for waiter in self._durable_waiters:
            if self.state.synced_through > waiter.committed_ms or self._stop.is_set():
                waiter.loop.call_soon_threadsafe(_settle, waiter.answer,
                                                 not self._stop.is_set())
            else:
                waiting.append(waiter)
        self._durable_waiters = waiting

    def command(self) -> list[str]:
        s = self.settings
        every = "off" if s.recovery_point_every is None else f"{s.recovery_point_every}s"
        return [sys.executable, "-m", "cps", "protect", str(s.path), *_repository_arguments(s.repository),
                "--db-id", s.id, "--json", "--report-durable", "--stop-at-end-of-input",
                "--full-every", f"{s.full_every}s", "--recovery-point-every", every,
                "--sync-interval", f"{s.sync_interval}s", "--wal-limit", str(s.wal_limit),
                "--spool-limit", str(s.spool_limit)]

    def _run(self) -> None:
        backoff = BACKOFF_FIRST
        while not self._stop.is_set():
            started = time.monotonic()
            self._run_once()
            if self._stop.is_set():
                return
            backoff = BACKOFF_FIRST if time.monotonic() - started > HEALTHY_AFTER else \
                min(backoff * 2, BACKOFF_MAX)
            logger.error("protector of %s exited (%s); starting it again in %g s",
                         self.settings.id, self.state.last_exit, backoff,
                         extra={"fields": {"db": self.settings.id}})
            self._stop.wait(backoff)
            with self.lock:
                self.state.restarts += 1

    def _run_once(self) -> None:
        environment = dict(os.environ)
        environment.pop("CPS_PASSPHRASE", None)
        if self.passphrase is not None:
            environment["CPS_PASSPHRASE"] = self.passphrase
        # stdin stays open, unwritten, while this process lives: see the module docstring
        process = subprocess.Popen(self.command(), stdin=subprocess.PIPE,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   env=environment)
        self._process = process
        with self.lock:
            self.state.running, self.state.ready = True, False
            self.state.pid, self.state.started_at = process.pid, time.time()
            self.state.bytes_before_child = self.state.captured_bytes
        errors = threading.Thread(target=self._log_stderr, args=(process.stderr,), daemon=True)
        errors.start()
        assert process.stdout is not None
        for line in process.stdout:
            self._event(line)
        status = process.wait()
        errors.join()
        assert process.stdin is not None
        process.stdin.close()
        with self.lock:
            self.state.running, self.state.ready, self.state.pid = False, False, None
            self.state.last_exit = (f"killed by {signal.Signals(-status).name}" if status < 0
                                    else f"exit status {status}")
            if status != 0 or not self._stop.is_set():
                self.state.error("protector-exit", self.state.last_exit)

    def _log_stderr(self, stream: BinaryIO | None) -> None:
        assert stream is not None
        for raw in stream:
            text = raw.decode(errors="replace").rstrip()
            if text:
                logger.warning("protector of %s: %s", self.settings.id, text,
                               extra={"fields": {"db": self.settings.id}})
                with self.lock:
                    self.state.error("protector-stderr", text)

    def _event(self, line: bytes) -> None:
        try:
            event = json.loads(line)
        except ValueError:
            return
        with self.lock:
            apply_event(self.state, event)
            self._answer_durable()
        if event.get("event") not in ("durable", "full-backup-progress"):
            logger.info("protector of %s: %s", self.settings.id, event.get("event"),
                        extra={"fields": {"db": self.settings.id, **_fields(event)}})


def apply_event(state: ProtectionState, event: dict[str, Any]) -> None:
    """What one protector event tells of its database."""
    name, at = event.get("event"), event.get("time", time.time())
    if name in ("ready", "resumed"):
        state.ready = True
    if name == "new-chain":
        state.chain = event.get("chain")
    if name in ("ready", "resumed", "stopped"):
        state.last_txn = event.get("txn", state.last_txn)
    if name == "resumed":
        state.chain = event.get("chain", state.chain)
    if name == "durable":
        state.durable_txn = event.get("txn")
        state.synced_through = int(event.get("synced_through") or 0)
        state.last_txn = max(state.last_txn or 0, state.durable_txn or 0)
        state.captured_bytes = state.bytes_before_child + int(event.get("bytes") or 0)
    if name == "full-backup":
        state.last_full = {"txn": event.get("txn"), "time": at}
    if name == "recovery-point":
        state.last_point = {"name": event.get("name"), "txn": event.get("txn"), "time": at}
    if name == "sync-failed":
        state.outage = str(event.get("error"))
        state.error("sync-failed", state.outage)
    if name == "sync-recovered":
        state.outage = None
    if name in ("full-backup-failed", "new-chain-failed", "recovery-point-failed",
                "wal-released", "upload-failed"):
        state.error(str(name), str(event.get("error") or event))


def _fields(event: dict[str, Any]) -> dict[str, Any]:
    """An event's fields for the log, where `db` names the database: its path, which the
    protector's own `db` is, goes under `path`."""
    return {"path" if k == "db" else k: v for k, v in event.items() if k not in ("event", "time")}


def _repository_arguments(location: Location) -> list[str]:
    """`cps protect`'s options naming the repository at `location`."""
    if not isinstance(location, S3Location):
        return ["--repo", str(location)]
    options = {"--s3-endpoint-url": location.endpoint_url, "--s3-region": location.region,
               "--s3-profile": location.profile}
    return ["--repo", str(location), *(word for option, value in options.items() if value
                                       for word in (option, value))]
