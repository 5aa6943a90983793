"""Running the workload: mailbox setup, pacing, retries, the operation log and the summary.

Operations run one after another on one connection, each one store transaction. With a rate the
n-th operation (from 0) starts no earlier than n / rate seconds after the first; a run that falls
behind catches up without sleeping, so the average holds. A run stops after `ops` operations, when
`duration` seconds have passed (no operation starts after that), or when `stop` is set; with none of
these it runs until stopped. A `StoreBusy` transaction is tried again up to `BUSY_RETRIES` times;
what still fails, or fails because another writer changed the target, is logged as an error record
and the run goes on (see `log.py`). Any other error ends the run.

Memory stays flat however long the run: the generator keeps counters, the corpus index and one
operation's targets, and reads everything else from the database when it needs it.
"""

from __future__ import annotations

import functools
import logging
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from ...errors import AlreadyExists, InvalidMessage, NotFound, StoreBusy, UsageError
from ..database import MailDatabase
from ..schema import STANDARD_FOLDERS
from .corpus import Corpus
from .log import OperationLog
from .operations import OPERATION_MIX, Fields, MailSource, Planned, Planner
from .synthetic import MessageFactory

logger = logging.getLogger(__name__)

T = TypeVar("T")

BUSY_RETRIES = 3
# Failures another process can cause between choosing a target and acting on it, or bad corpus files.
_LOGGED_FAILURES = (StoreBusy, NotFound, AlreadyExists, InvalidMessage)


@dataclass(frozen=True, slots=True)
class WorkloadSummary:
    seed: int
    ops: Mapping[str, int]  # committed operations by kind, every kind present
    errors: int  # operations logged as failed
    mailboxes_created: int
    messages_delivered: int  # deliver operations
    deliveries: int  # copies placed, one per recipient
    bytes_delivered: int  # raw bytes of the delivered messages, each counted once
    elapsed: float  # seconds from the first operation to the end
    stopped: str  # "ops", "duration" or "interrupted"

    @property
    def total_ops(self) -> int:
        return sum(self.ops.values()) + self.errors

    @property
    def ops_per_second(self) -> float:
        return self.total_ops / self.elapsed if self.elapsed > 0 else 0.0

    def to_json(self) -> dict[str, object]:
        return {
            "seed": self.seed, "ops": dict(self.ops), "total_ops": self.total_ops,
            "errors": self.errors, "mailboxes_created": self.mailboxes_created,
            "messages_delivered": self.messages_delivered, "deliveries": self.deliveries,
            "bytes_delivered": self.bytes_delivered, "elapsed_seconds": round(self.elapsed, 3),
            "ops_per_second": round(self.ops_per_second, 2), "stopped": self.stopped,
        }


@dataclass(slots=True)
class _Tally:
    ops: dict[str, int] = field(default_factory=lambda: dict.fromkeys(OPERATION_MIX, 0))
    errors: int = 0
    mailboxes_created: int = 0
    messages_delivered: int = 0
    deliveries: int = 0
    bytes_delivered: int = 0


def mailbox_address(number: int) -> str:
    return f"user{number:03d}@example.com"


class WorkloadGenerator:
    """Drives one open mail database with the seeded operation mix. Not thread-safe, except `stop`."""

    def __init__(
        self,
        db: MailDatabase,
        *,
        corpus: Corpus | None = None,
        seed: int = 0,
        mailboxes: int = 5,
        log: OperationLog | None = None,
        stop: threading.Event | None = None,
    ) -> None:
        if mailboxes < 1:
            raise UsageError("the workload needs at least one mailbox")
        self.db = db
        self.seed = seed
        self.log = log
        self.stop_event = stop or threading.Event()
        self.addresses = tuple(mailbox_address(n) for n in range(1, mailboxes + 1))
        # Separate streams, so the operations do not shift when the messages change and vice versa.
        content_rng = random.Random(f"cps-workload:{seed}:content")
        source = (
            _corpus_source(corpus, content_rng) if corpus is not None
            else _generated_source(content_rng)
        )
        self.planner = Planner(db, random.Random(f"cps-workload:{seed}:ops"), source, self.addresses)
        self._seq = 0
        self._tally = _Tally()

    def stop(self) -> None:
        """Ask `run` to end after the operation in progress; safe from any thread or signal handler."""
        self.stop_event.set()

    def create_mailboxes(self) -> None:
        """Create the workload's mailboxes that do not exist yet, logging each."""
        existing = {m.address for m in self.db.mailboxes()}
        for number, address in enumerate(self.addresses, start=1):
            if address in existing:
                continue
            try:
                mailbox = _retry_busy(
                    functools.partial(self.db.create_mailbox, address, f"User {number:03d}"))
            except AlreadyExists:  # another workload process created it first
                continue
            self._write({
                "op": "mailbox_create", "committed_at": time.time(), "mailbox": address,
                "mailbox_id": mailbox.id, "folders": [[name] for name, _ in STANDARD_FOLDERS],
            })
            self._tally.mailboxes_created += 1

    def step(self) -> Fields:
        """Choose and perform one operation; return the record written for it."""
        kind, address = self.planner.choose()
        try:
            planned = self.planner.plan(kind, address)
            kind = planned.op
            fields = _retry_busy(planned.perform)
        except _LOGGED_FAILURES as error:
            self._tally.errors += 1
            return self._write({
                "op": kind, "mailbox": address, "failed_at": time.time(), "error": error.code,
                "message": error.message,
            })
        committed_at = time.time()
        self._count(planned)
        return self._write({
            "op": planned.op, "committed_at": committed_at, "mailbox": planned.mailbox, **fields})

    def run(
        self, *, ops: int | None = None, duration: float | None = None, rate: float | None = None
    ) -> WorkloadSummary:
        """Create the missing mailboxes, then perform operations until `ops` are done, `duration`
        seconds have passed or `stop` is called, `rate` a second if given; the summary counts this
        call's operations."""
        _check_limits(ops, duration, rate)
        self._tally = _Tally()
        self.create_mailboxes()
        start = time.monotonic()
        end = None if duration is None else start + duration
        done = 0
        while True:
            if ops is not None and done >= ops:
                stopped = "ops"
                break
            due = start + done / rate if rate else time.monotonic()
            reason = self._wait_until(due, end)
            if reason:
                stopped = reason
                break
            self.step()
            done += 1
        return self._summary(time.monotonic() - start, stopped)

    def _wait_until(self, due: float, end: float | None) -> str | None:
        """Sleep until `due`; return why the run ends instead, if it does."""
        if end is not None and due >= end:
            return "duration"
        if self.stop_event.wait(max(0.0, due - time.monotonic())):
            return "interrupted"
        if end is not None and time.monotonic() >= end:
            return "duration"
        return None

    def _write(self, record: Fields) -> Fields:
        self._seq += 1
        record = {"seq": self._seq, **record}
        if self.log is not None:
            self.log.write(record)
        return record

    def _count(self, planned: Planned) -> None:
        tally = self._tally
        tally.ops[planned.op] += 1
        if planned.op == "deliver":
            tally.messages_delivered += 1
            tally.deliveries += planned.copies
            tally.bytes_delivered += planned.size

    def _summary(self, elapsed: float, stopped: str) -> WorkloadSummary:
        t = self._tally
        return WorkloadSummary(
            seed=self.seed, ops=dict(t.ops), errors=t.errors,
            mailboxes_created=t.mailboxes_created, messages_delivered=t.messages_delivered,
            deliveries=t.deliveries, bytes_delivered=t.bytes_delivered, elapsed=elapsed,
            stopped=stopped,
        )


def run_workload(
    db_path: str | Path,
    *,
    corpus: str | Path | None = None,
    ops: int | None = None,
    duration: float | None = None,
    rate: float | None = None,
    seed: int = 0,
    log: str | Path | None = None,
    mailboxes: int = 5,
    stop: threading.Event | None = None,
) -> WorkloadSummary:
    """Run the workload against the mail database at `db_path` (see `WorkloadGenerator.run`),
    writing the operation log to `log`, a file that must not exist yet."""
    _check_limits(ops, duration, rate)
    indexed = Corpus.index(Path(corpus)) if corpus is not None else None
    with MailDatabase.open(db_path) as db:
        operation_log = OperationLog(Path(log)) if log is not None else None
        try:
            generator = WorkloadGenerator(
                db, corpus=indexed, seed=seed, mailboxes=mailboxes, log=operation_log, stop=stop)
            return generator.run(ops=ops, duration=duration, rate=rate)
        finally:
            if operation_log is not None:
                operation_log.close()


def _retry_busy(perform: Callable[[], T]) -> T:
    for attempt in range(1, BUSY_RETRIES + 1):
        try:
            return perform()
        except StoreBusy:
            logger.warning("workload: store busy, trying again attempt=%d", attempt)
    return perform()


def _check_limits(ops: int | None, duration: float | None, rate: float | None) -> None:
    if ops is not None and ops < 0:
        raise UsageError(f"--ops must be 0 or more, not {ops}")
    if duration is not None and not duration > 0:
        raise UsageError(f"--duration must be more than 0 seconds, not {duration}")
    if rate is not None and not rate > 0:
        raise UsageError(f"--rate must be more than 0 operations a second, not {rate}")


def _generated_source(rng: random.Random) -> MailSource:
    factory = MessageFactory(rng)
    return lambda sender, recipients: (factory.compose(sender, recipients), "generated")


def _corpus_source(corpus: Corpus, rng: random.Random) -> MailSource:
    return lambda _sender, _recipients: corpus.next_message(rng)
