"""The delivery half of the ingest benchmark: `cps store serve` as a child process, and the clients.

`CPSServe(root, users, options)` creates a fresh mail database in `root` with one mailbox per user,
runs `cps store serve DB --smtp 127.0.0.1:0 --lmtp 127.0.0.1:0 OPTIONS...` and reads the bound ports
from its "smtp listening on HOST:PORT" lines; it stops the server with SIGTERM on exit.

`deliver(protocol, port, envelopes, clients)` is the client, the same for every server: `clients`
threads, each with one smtplib.SMTP or smtplib.LMTP connection opened and greeted before the clock
starts, take (recipient, message) pairs from one shared queue and send each as its own transaction
(MAIL, one RCPT, DATA). The clock stops when the last reply has arrived. Any reply but 250 fails the
measurement. Given a `latencies` list, each client also appends to it the seconds each of its
deliveries took, from sending MAIL to reading the reply to DATA.
"""

from __future__ import annotations

import contextlib
import queue
import re
import smtplib
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import IO

from common import terminate
from cps.store import MailDatabase

SENDER = "bench@example.org"
START_SECONDS = 30.0
STOP_SECONDS = 60.0
CLIENT_TIMEOUT_SECONDS = 120.0

Envelope = tuple[str, bytes]  # (recipient, message as sent: CRLF line endings)


class CPSServe:
    """A running `cps store serve` over a new database under `root`, for the life of a `with` block."""

    def __init__(self, root: Path, users: Sequence[str], options: Sequence[str] = ()) -> None:
        self.database = root / "mail.db"
        self.options = tuple(options)
        self.log = root / "serve.log"
        self.users = users
        self.ports: dict[str, int] = {}
        self._process: subprocess.Popen[str] | None = None

    def __enter__(self) -> CPSServe:
        with MailDatabase.create(self.database) as database:
            for user in self.users:
                database.create_mailbox(user)
        with self.log.open("wb") as log:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "cps", "store", "serve", str(self.database),
                 "--smtp", "127.0.0.1:0", "--lmtp", "127.0.0.1:0", *self.options],
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log, text=True)
        try:
            self._read_ports()
        except BaseException:
            self._stop()
            raise
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop()

    def message_count(self, user: str) -> int:
        """How many messages `user`'s Inbox holds, read from the database file."""
        return inbox_count(self.database, user)

    def log_tail(self, lines: int = 40) -> str:
        """The end of what the server wrote to stderr, to explain a failed measurement."""
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def _read_ports(self) -> None:
        """Wait (with a deadline) for one "NAME listening on HOST:PORT" line per listener."""
        assert self._process is not None and self._process.stdout is not None
        lines: queue.SimpleQueue[str] = queue.SimpleQueue()
        threading.Thread(target=_forward_lines, args=(self._process.stdout, lines), daemon=True).start()
        deadline = time.monotonic() + START_SECONDS
        while len(self.ports) < 2:
            try:
                line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise RuntimeError(f"cps store serve did not listen within {START_SECONDS} s") from None
            if not line:
                raise RuntimeError(f"cps store serve exited: {self.log_tail()}")
            match = re.fullmatch(r"(smtp|lmtp) listening on 127\.0\.0\.1:(\d+)\s*", line)
            if match:
                self.ports[match.group(1)] = int(match.group(2))

    def _stop(self) -> None:
        if self._process is None:
            return
        terminate(self._process, STOP_SECONDS)
        self._process = None


def inbox_count(database: Path, user: str) -> int:
    """How many messages `user`'s Inbox in `database` holds, read from the database file."""
    with MailDatabase.open(database, readonly=True) as opened:
        return sum(folder.messages for folder in opened.folders(user) if folder.role == "inbox")


def _forward_lines(stream: IO[str], lines: queue.SimpleQueue[str]) -> None:
    """Hand each line of `stream` to `lines`, then "" at its end."""
    for line in stream:
        lines.put(line)
    lines.put("")


def deliver(protocol: str, port: int, envelopes: Sequence[Envelope], clients: int,
            latencies: list[float] | None = None) -> float:
    """Send every envelope to 127.0.0.1:`port` over `clients` connections; the seconds it took.
    With `latencies`, the seconds of each delivery are appended to it (in no particular order)."""
    work: queue.SimpleQueue[Envelope] = queue.SimpleQueue()
    for envelope in envelopes:
        work.put(envelope)
    start = threading.Barrier(clients + 1)
    failures: list[str] = []
    threads = [
        threading.Thread(target=_client, args=(protocol, port, work, start, failures, latencies))
        for _ in range(clients)
    ]
    for thread in threads:
        thread.start()
    with contextlib.suppress(threading.BrokenBarrierError):  # a client failed: reported below
        start.wait(CLIENT_TIMEOUT_SECONDS)
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - began
    if failures:
        raise RuntimeError(f"{len(failures)} {protocol} deliveries failed, first: {failures[0]}")
    return seconds


def _client(
    protocol: str, port: int, work: queue.SimpleQueue[Envelope], start: threading.Barrier,
    failures: list[str], latencies: list[float] | None,
) -> None:
    kind = smtplib.LMTP if protocol == "lmtp" else smtplib.SMTP
    try:
        with kind("127.0.0.1", port, timeout=CLIENT_TIMEOUT_SECONDS) as session:
            session.ehlo()  # LHLO for LMTP
            start.wait(CLIENT_TIMEOUT_SECONDS)
            while True:
                try:
                    recipient, message = work.get_nowait()
                except queue.Empty:
                    break
                began = time.perf_counter()
                refused = session.sendmail(SENDER, [recipient], message)
                if latencies is not None:
                    latencies.append(time.perf_counter() - began)  # list.append is atomic
                if refused:
                    failures.append(f"{recipient}: {refused}")
    except (OSError, smtplib.SMTPException, threading.BrokenBarrierError) as error:
        failures.append(f"{type(error).__name__}: {error}")
        start.abort()
