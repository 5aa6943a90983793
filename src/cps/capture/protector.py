"""The protector: one database, captured continuously into a repository until told to stop.

Each cycle (every `poll_interval`, 10 ms by default) pins a snapshot, reads the transactions newly
committed to the WAL and stamps each with the time it was first seen. Captured transactions are
written to the repository as one segment every `sync_interval`, and before anything that could let
the WAL be reset. Full backups run in a thread of their own while capture goes on; recovery points
are taken on schedule and on request.

On start-up the protector resumes the last chain exactly where it stopped when the WAL proves it
can (same generation, the last captured frame still there with the same checksum). Otherwise it
says why, starts a new chain and takes a full backup: the timeline shows the gap between chains.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import CaptureError
from ..repository import (
    Chain,
    DatabaseInfo,
    FullBackup,
    RecoveryPoint,
    Repository,
    Segment,
    Transaction,
    WalPosition,
)
from .chain_state import load_chain_state
from .full_backup import FullResult, FullSource, synthesize_full, take_full
from .pinning import ReaderPins
from .requests import answer_requests
from .sqlite_db import DatabaseFile, file_pages, require_wal_mode
from .wal_follower import CommittedTxn, ContinuityLost, WalFollower

logger = logging.getLogger(__name__)

FULL_RETRY_SECONDS = 600.0
RESET_RETRY_SECONDS = 0.25
CATCH_UP_ROUNDS = 5
STATUS_EVERY_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class ProtectOptions:
    full_every: float = 24 * 3600.0
    # Also take a full backup once the log captured since the last one passes this share of the
    # database's size (and at least full_after_log_min bytes), so a restore never has more than
    # that to replay after its full backup.
    full_after_log_share: float = 1.0
    full_after_log_min: int = 256 << 20
    full_after_log_interval: float = 600.0  # and not more often than this (a hot page counts
    # once per transaction that writes it, so a busy log outgrows any size quickly)
    # Write a segment as soon as this many page bytes are pending, whatever the sync interval,
    # so that memory stays bounded under any write rate.
    segment_max_bytes: int = 16 << 20
    recovery_point_every: float | None = 15 * 60.0
    sync_interval: float = 1.0
    poll_interval: float = 0.01
    reset_frames: int = 4096  # force a WAL reset once this many frames are in it (16 MiB at 4 KiB)
    checkpoint_frames: int = 1  # run a PASSIVE checkpoint after capturing this many frames


@dataclass
class _Pending:
    transactions: list[Transaction] = field(default_factory=list)
    start: WalPosition | None = None
    frames: int = 0


class Protector:
    def __init__(self, db_path: Path, repo: Repository, db_id: str,
                 options: ProtectOptions = ProtectOptions(),
                 on_event: Callable[[str, dict[str, object]], None] | None = None) -> None:
        self.db_path = db_path
        self.repo = repo
        self.db_id = db_id
        self.options = options
        self.on_event = on_event or (lambda _event, _fields: None)
        self.db_file = DatabaseFile(db_path)
        try:
            self.page_size = require_wal_mode(self.db_file).page_size
        except BaseException:
            self.db_file.close()
            raise
        self.follower = WalFollower(Path(f"{db_path}-wal"))
        self.pending = _Pending()
        self.chain: Chain | None = None
        self.last_txn = 0
        self.last_full: FullBackup | None = None
        self.last_full_started = 0.0
        self.log_bytes_since_full = 0
        self.last_point = time.monotonic()
        self.last_sync = time.monotonic()
        self.frames_since_checkpoint = 0
        self.reset_asked_in: int | None = None
        self.next_reset_try = 0.0
        self.last_status = 0.0
        self.captured_at = 0  # when the last capture began (ms)
        self.synced_through = 0  # every commit before this time (ms) is durable in the repository
        self.full_thread: threading.Thread | None = None
        self.full_error: BaseException | None = None
        self.lags: list[float] = []
        self.pins: ReaderPins | None = None

    # Life cycle

    def run(self, stop: threading.Event, on_ready: Callable[[], None] | None = None) -> None:
        """Protect until `stop` is set; always leaves everything captured durable."""
        try:
            self.start()
            if on_ready is not None:
                on_ready()
            while not stop.is_set():
                self.cycle()
                stop.wait(self.options.poll_interval)
        finally:
            self.finish()

    def start(self) -> None:
        self.repo.add_database(DatabaseInfo(self.db_id, str(self.db_path.resolve()),
                                            self.page_size, _now_ms()))
        self.pins = ReaderPins(self.db_path)
        state = load_chain_state(self.repo, self.db_id)
        self.last_txn = state.last_txn
        if state.chain is None:
            self._new_chain("first protection of this database")
            return
        reason = state.problem
        if reason is None:
            position = state.position
            assert position is not None
            self.chain, self.last_full = state.chain, state.last_full

            def resume_and_capture() -> None:
                self.follower.resume(position)
                self._capture()

            try:
                self.pins.pin_then(resume_and_capture)
            except ContinuityLost as lost:
                reason = lost.reason
        if reason is not None:
            self._new_chain(reason)
            return
        self.last_full_started = time.monotonic()
        self.on_event("resumed", {"chain": state.chain.chain, "txn": self.last_txn})

    def finish(self) -> None:
        running = self.full_thread
        if running is not None:
            running.join()
        if self.pins is not None and self.chain is not None:
            with contextlib.suppress(ContinuityLost):  # the next start finds it and says so
                self.pins.pin_then(self._capture)  # everything committed until the stop
        self.flush()
        self._write_status("stopped")
        if self.pins is not None:
            self.pins.close()
            self.pins = None
        self.db_file.close()  # last: see DatabaseFile

    # One cycle

    def cycle(self) -> None:
        assert self.pins is not None
        try:
            self.pins.pin_then(self._capture)
        except ContinuityLost as lost:
            self.flush()
            self._new_chain(lost.reason)
            return
        now = time.monotonic()
        due = self.pending.transactions and now - self.last_sync >= self.options.sync_interval
        if due or self.pending.frames * self.page_size >= self.options.segment_max_bytes:
            self.flush()
        self._maintain_wal()
        self._run_schedules(now)
        if now - self.last_status >= STATUS_EVERY_SECONDS:
            self._write_status("protecting")
        answer_requests(self.repo, self.db_id, self._request_point)
        if self.full_error is not None:
            error, self.full_error = self.full_error, None
            logger.error("full backup of %s failed, capture goes on: %s", self.db_id, error)
            self.on_event("full-backup-failed", {"error": str(error)})
            self.last_full_started = now - self.options.full_every + FULL_RETRY_SECONDS

    def _capture(self) -> None:
        """Read everything committed since the last capture, writing a segment whenever a
        segment's worth is pending, so that a backlog never has to fit in memory at once."""
        started = _now_ms()
        while True:
            start = self.follower.position
            committed, complete = self.follower.poll(self.options.segment_max_bytes)
            for transaction in committed:
                self._record(transaction, start)
            if complete:
                break
            self.flush()
        self.captured_at = started
        if not self.pending.transactions:
            self.synced_through = started  # everything committed before it is durable already

    def _record(self, committed: CommittedTxn, start: WalPosition) -> None:
        if self.pending.start is None:
            self.pending.start = start
        self.last_txn += 1
        pages = tuple((f.page_number, f.page) for f in committed.frames)
        self.pending.transactions.append(
            Transaction(self.last_txn, _now_ms(), committed.commit_size, pages))
        self.pending.frames += len(pages)
        self.frames_since_checkpoint += len(pages)
        self.log_bytes_since_full += len(pages) * self.page_size

    def flush(self) -> bool:
        """Make every captured transaction durable in the repository, as one segment. False when
        the repository could not be written (the transactions stay pending)."""
        if not self.pending.transactions:
            return True
        assert self.chain is not None and self.pending.start is not None
        segment = Segment(self.chain.chain, self.page_size, self.pending.start,
                          self.follower.position, tuple(self.pending.transactions))
        try:
            self.repo.write_segment(self.db_id, segment)
        except OSError as exc:
            # Kept in memory, and the WAL cannot be reset past it: retried at the next sync.
            logger.error("cannot write a segment of %s (%s); %d transactions kept, retrying",
                         self.db_id, exc.strerror, len(segment.transactions))
            self.on_event("sync-failed", {"error": exc.strerror or str(exc)})
            self.last_sync = time.monotonic()
            return False
        durable_at = _now_ms()
        self.lags.extend((durable_at - t.seen_at) / 1000 for t in segment.transactions)
        del self.lags[:-10_000]
        self.pending = _Pending()
        self.last_sync = time.monotonic()
        self.synced_through = self.captured_at
        return True

    def _maintain_wal(self) -> None:
        assert self.pins is not None
        if self.frames_since_checkpoint >= self.options.checkpoint_frames:
            # Backfill as soon as the pin allows, so the application's own automatic
            # checkpoints (run inside its commits) find little or nothing left to do.
            log, done = self.pins.checkpoint()
            if log == done:
                self.frames_since_checkpoint = 0
        generation = self.follower.position.salt1
        if (self.follower.frame < self.options.reset_frames
                or self.reset_asked_in == generation or time.monotonic() < self.next_reset_try):
            return
        # Catch up outside the write lock, so that under it only a transaction or two remain.
        for _ in range(CATCH_UP_ROUNDS):
            self.pins.pin_then(self._capture)
            if len(self.pending.transactions) <= 2:
                break
            self.flush()
        self.pins.checkpoint()

        def capture_and_flush() -> None:
            self._capture()
            if not self.flush():
                raise CaptureError("the repository cannot be written; the WAL is kept")

        try:
            reset = self.pins.force_reset(capture_and_flush)
        except CaptureError:
            reset = False
        if not reset:
            self.next_reset_try = time.monotonic() + RESET_RETRY_SECONDS
            return
        self.reset_asked_in = generation
        self.on_event("wal-reset", {"frames": self.follower.frame})

    def _run_schedules(self, now: float) -> None:
        every = self.options.recovery_point_every
        if every is not None and now - self.last_point >= every:
            self.create_point(time.strftime("scheduled %Y-%m-%dT%H:%M:%SZ", time.gmtime()), True)
        if self.full_thread is None and (now - self.last_full_started >= self.options.full_every
                                         or self._log_outgrew_full()):
            self._start_full()

    def _log_outgrew_full(self) -> bool:
        if time.monotonic() - self.last_full_started < self.options.full_after_log_interval:
            return False
        database_bytes = (self.follower.db_pages or 0) * self.page_size
        threshold = max(self.options.full_after_log_min,
                        database_bytes * self.options.full_after_log_share)
        return self.log_bytes_since_full >= threshold

    # Recovery points

    def create_point(self, name: str, scheduled: bool = False) -> RecoveryPoint:
        """A recovery point at the last transaction captured, made durable first."""
        assert self.chain is not None
        self.flush()
        point = RecoveryPoint(name, self.chain.chain, self.last_txn, _now_ms(), scheduled)
        self.repo.write_point(self.db_id, point)
        self.last_point = time.monotonic()
        self.on_event("recovery-point", {"name": name, "txn": point.txn})
        return point

    def _request_point(self, name: str) -> RecoveryPoint:
        assert self.pins is not None
        self.pins.pin_then(self._capture)  # everything committed before the request was seen
        return self.create_point(name)

    # Chains and full backups

    def _new_chain(self, reason: str) -> None:
        """Start a chain at the database as it is now, with a full backup as its first point."""
        assert self.pins is not None
        number = max([c.chain for c in self.repo.chains(self.db_id)], default=0) + 1
        self.pending = _Pending()
        extra = self.pins.extra_pin()
        try:
            self.follower.start_fresh()  # what the WAL holds now is part of the full's image
            self.last_txn += 1
            self.log_bytes_since_full = 0
            self.chain = Chain(number, _now_ms(), self.last_txn, reason)
            self.repo.write_chain(self.db_id, self.chain)
            logger.info("new chain %s for %s: %s", number, self.db_id, reason)
            self.on_event("new-chain", {"chain": number, "reason": reason, "txn": self.last_txn})
            with self.repo.reader_lock():
                result = take_full(self.repo, self.db_id, number, self.last_txn,
                                   self._full_source(), self.last_full)
            self.pins.pin_then(self._capture)  # pinned at or before the captured position again
        finally:
            extra.close()
        self._full_done(result)

    def _start_full(self) -> None:
        """A full backup synthesised from the repository in a thread of its own (see
        full_backup.py): it needs every transaction up to it written first, and nothing else."""
        assert self.chain is not None
        previous = self.last_full
        if previous is None or previous.chain != self.chain.chain:
            return
        if not self.flush() or self.last_txn == previous.txn:
            self.last_full_started = time.monotonic()
            return
        txn, position = self.last_txn, self.follower.position
        self.last_full_started = time.monotonic()
        self.log_bytes_since_full = 0

        def work() -> None:
            try:
                with self.repo.reader_lock():
                    result = synthesize_full(self.repo, self.db_id, previous, txn, position)
                self._full_done(result)
            except BaseException as exc:  # reported on the capture thread, which goes on
                self.full_error = exc
            finally:
                self.full_thread = None

        self.full_thread = threading.Thread(target=work, name="cps-full-backup", daemon=True)
        self.full_thread.start()

    def _full_source(self) -> FullSource:
        pages = self.follower.db_pages or file_pages(self.db_file, self.page_size)
        return FullSource(self.db_file, self.follower.wal_path, self.page_size, pages,
                          dict(self.follower.page_frames), self.follower.position)

    def _full_done(self, result: FullResult) -> None:
        self.last_full = result.full
        self.last_full_started = time.monotonic()
        self.on_event("full-backup", {"txn": result.full.txn, "pages": result.full.pages,
                                      "pages_stored": result.pages_stored})

    def _write_status(self, state: str) -> None:
        self.last_status = time.monotonic()
        lags = sorted(self.lags)
        self.repo.write_status(self.db_id, {
            "state": state, "updated_at": _now_ms(), "synced_through": self.synced_through,
            "chain": self.chain.chain if self.chain else None,
            "last_txn": self.last_txn, "source_path": str(self.db_path.resolve()),
            "position": _position_fields(self.follower.position),
            "lag_p50": lags[len(lags) // 2] if lags else None,
            "lag_p99": lags[int(len(lags) * 0.99)] if lags else None,
        })


def _position_fields(position: WalPosition) -> dict[str, object]:
    return {"checkpoint_seq": position.checkpoint_seq, "salt1": position.salt1,
            "salt2": position.salt2, "frame": position.frame,
            "checksum": list(position.checksum)}


def _now_ms() -> int:
    return int(time.time() * 1000)
