"""The protector: one database, captured continuously into a repository until told to stop.

Each cycle (every `poll_interval`, 10 ms, while the database is idle; every `batch_interval`, 100
ms, while commits keep coming) reads the transactions newly committed to the WAL, stamps each with
the time it was first seen and compresses it into the segment being built; pinned snapshots keep
the WAL from being reset before they are durable (pinning.py). The segment is
handed over every `sync_interval` (or once it holds `segment_max_bytes` of pages) to a thread that
writes it (segment_writer.py), so that capture goes on while segments are fsynced; a forced WAL
reset, a recovery point and a full backup each wait until what they need is durable. Full backups
are made by a child process (full_process.py): a chain's first while capture waits for it, later
ones while capture goes on. Recovery points are taken on schedule and on request. A repository in
a bucket is written through a local upload spool (repository/storage/spool.py): "durable" here
means durable on this host, and the status says how far the bucket has got (upload_progress.py).

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
from pathlib import Path

from ..errors import CaptureError, MissingFile
from ..repository import (
    Chain,
    ChainEnd,
    DatabaseInfo,
    ProtectorStatus,
    RecordCompressor,
    RecoveryPoint,
    Repository,
    SegmentBuilder,
    Transaction,
    WalPosition,
)
from ..repository.storage import Uploader
from .chain_state import ChainState, load_chain_state
from .commit_clock import CommitClock
from .continuity import file_is_state, promotion_reason
from .full_backup import FullResult, FullSource
from .full_process import FullBackupProcess
from .full_schedule import FullSchedule
from .options import ProtectOptions
from .outage import Outage
from .pinning import ReaderPins
from .requests import answer_requests
from .segment_writer import SegmentWriter
from .sqlite_db import DatabaseFile, file_pages, require_wal_mode
from .upload_progress import UploadProgress
from .wal_follower import CommittedTxn, ContinuityLost, WalFollower

logger = logging.getLogger(__name__)

RESET_RETRY_SECONDS = 0.25
RESET_AGAIN_AFTER = 1 / 8  # of reset_frames, grown in the same generation (see _maintain_wal)
CATCH_UP_ROUNDS = 5
WAITING_SHARE = 0.25  # of segment_max_bytes, compressed: about one typical segment
READ_MAX_BYTES = 2 << 20  # of pages read from the WAL before they are compressed
STATUS_EVERY_SECONDS = 1.0
CHAIN_RETRY_SECONDS = 10.0  # after a new chain could not be started
DURABLE_EVERY = 0.02  # seconds between two "durable" events, at most one a cycle anyway


class Protector:
    def __init__(self, db_path: Path, repo: Repository, db_id: str,
                 options: ProtectOptions | None = None,
                 on_event: Callable[[str, dict[str, object]], None] | None = None,
                 uploads: Uploader | None = None) -> None:
        self.db_path = db_path
        self.repo = repo
        self.db_id = db_id
        self.options = options = options or ProtectOptions()
        self.on_event = on_event or (lambda _event, _fields: None)
        self.db_file = DatabaseFile(db_path)
        try:
            self.page_size = require_wal_mode(self.db_file).page_size
        except BaseException:
            self.db_file.close()
            raise
        self.follower = WalFollower(Path(f"{db_path}-wal"))
        self.compressor = RecordCompressor()
        self.clock = CommitClock()
        self.pending: SegmentBuilder | None = None  # the segment being built
        self.chain: Chain | None = None
        self.last_txn = 0
        self.durable_floor = 0  # durable in the repository before this run's segments
        self.next_chain = 1
        self.chain_wanted: tuple[str, ChainEnd | None] | None = None  # to start, when it can be
        self.next_chain_try = 0.0
        self.reported_synced = 0  # the last synced_through a "durable" event reported
        self.reported_txn = 0  # and the last durable transaction it reported
        self.last_durable_report = 0.0
        self.outage = Outage(db_id, self.follower.wal_path, options.wal_limit, self.on_event)
        self.fulls = FullSchedule(repo, db_id, options, self.on_event)
        self.uploads = uploads
        self.upload_progress = UploadProgress(uploads, db_id, self.on_event) if uploads else None
        self.last_point = time.monotonic()
        self.last_sync = time.monotonic()
        self.frames_since_checkpoint = 0
        self.reset_asked: tuple[int, int] | None = None  # (generation's salt-1, frame) when asked
        self.next_reset_try = 0.0
        self.last_status = 0.0
        self.captured_at = 0  # when the last capture began (ms)
        self.pins: ReaderPins | None = None
        self.writer = SegmentWriter(repo, db_id,
                                    int(options.segment_max_bytes * WAITING_SHARE))

    # Life cycle

    def run(self, stop: threading.Event, on_ready: Callable[[], None] | None = None) -> None:
        """Protect until `stop` is set; always leaves everything captured durable. `on_ready`
        is called once a chain is being captured (its first full backup done, or resumed)."""
        self.start()
        try:
            while not stop.is_set():
                if on_ready is not None and self.chain_wanted is None:
                    on_ready()
                    on_ready = None
                before = self.last_txn
                self.cycle()
                stop.wait(self._pause(captured=self.last_txn != before))
        finally:
            self.finish()

    def start(self) -> None:
        """Resume the last chain or start one. A start that fails writes nothing more to the
        repository (no status) and releases what it took."""
        try:
            self._start()
        except BaseException:
            if self.pins is not None:
                self.pins.close()
                self.pins = None
            self.writer.close()
            self.db_file.close()
            raise

    def _start(self) -> None:
        state = load_chain_state(self.repo, self.db_id) if self._known() else None
        here = str(self.db_path.resolve())
        known = state.source_path if state is not None else ""
        promotion = promotion_reason(self.db_path, self.db_id,
                                     state.chain if state is not None else None)
        if known and known != here and not self.options.new_source and promotion is None:
            raise CaptureError(
                f"the repository protects another database as {self.db_id!r}: {known}; this is "
                f"{here}", hint="Protect this one under a name of its own with --db-id NAME. If "
                "it is the same database, moved or restored to this path, pass --new-source.")
        self.repo.add_database(DatabaseInfo(self.db_id, here, self.page_size, _now_ms()))
        self.pins = ReaderPins(self.db_path)
        if state is None:
            state = load_chain_state(self.repo, self.db_id)
        self.last_txn = self.durable_floor = state.last_txn
        self.next_chain = state.next_chain
        moved = f"protected from a new path, {here} (was {known}): " if known != here and known \
            else ""
        if state.chain is None or promotion is not None:
            self._new_chain(promotion or moved + (state.problem or "first protection of this "
                                                  "database"), state.ending)
            return
        self.chain, self.fulls.last_full = state.chain, state.last_full
        try:
            self._resume(state)
        except ContinuityLost as lost:
            if not self._unchanged(state):
                self._new_chain(moved + lost.reason, state.ending)
                return
        self.sync()  # a first pin may hold no place in the WAL (pinning.py)
        self.fulls.postpone()
        self.on_event("resumed", {"chain": state.chain.chain, "txn": self.last_txn})

    def _known(self) -> bool:
        """Whether the repository holds this database already."""
        try:
            self.repo.database(self.db_id)
        except MissingFile:
            return False
        return True

    def _resume(self, state: ChainState) -> None:
        assert self.pins is not None and state.position is not None
        position = state.position

        def resume_and_capture() -> bool:
            self.follower.resume(position)
            self._capture()
            return True  # the first pin

        self.pins.pin_then(resume_and_capture)

    def _unchanged(self, state: ChainState) -> bool:
        """After the WAL was checkpointed away while nothing protected the database: whether the
        database holds exactly the last captured state (continuity.py). If it does, capture goes
        on from the WAL's first frame, in the same chain."""
        assert self.pins is not None and state.last_full is not None
        # A read-write connection's first look makes the WAL index shared (-shm), so that the pin
        # below holds a read lock other connections see: a read-only connection alone, with no
        # -shm there, would keep its WAL index in its own memory and stop no checkpoint.
        self.pins.checkpoint()
        extra = self.pins.extra_pin()
        try:
            if WalFollower(self.follower.wal_path).start_fresh():
                return False  # frames the file may or may not hold already: no proof
            if not file_is_state(self.repo, self.db_id, state.last_full, state.log_since_full,
                                 self.last_txn, self.db_file, self.page_size):
                return False

            def capture_from_start() -> bool:
                self.follower.begin_generation()
                self._capture()
                return True

            self.pins.pin_then(capture_from_start)
        finally:
            extra.close()
        self.on_event("unchanged", {"chain": state.chain.chain if state.chain else None,
                                    "txn": state.last_txn})
        return True

    def finish(self) -> None:
        self.fulls.stop()
        if self.pins is not None and self.chain is not None and self._capturing():
            with contextlib.suppress(ContinuityLost):  # the next start finds it and says so
                self._capture_pinned()  # everything committed until the stop
        self.sync()
        self.writer.close()
        if self.uploads is not None:
            self.uploads.wait_idle()  # so that the last status says what the bucket has
        self._write_status("stopped")
        if self.pins is not None:
            self.pins.close()
            self.pins = None
        self.db_file.close()  # last: see DatabaseFile

    def _pause(self, captured: bool) -> float:
        """Seconds until the next cycle: `poll_interval`, or `batch_interval` after a cycle that
        captured transactions, so that under a stream of commits capture reads several at a time
        rather than a few every few milliseconds, which slowed the application's own commits
        (docs/benchmarks.md, "Capture in batches"). Never later than the sync falls due, and no
        longer than `poll_interval` while a segment is being written, or than DURABLE_EVERY while
        durable transactions wait to be reported, so that deliveries waiting for their
        durability are answered as soon as it is."""
        options = self.options
        pause = options.batch_interval if captured else options.poll_interval
        if not self.writer.idle:
            pause = min(pause, options.poll_interval)
        if options.report_durable and self.durable_txn != self.reported_txn:
            pause = min(pause, DURABLE_EVERY)  # a report held back by its spacing is next
        if self.pending is not None:
            pause = min(pause, self.last_sync + options.sync_interval - time.monotonic())
        return max(0.0, pause)

    # One cycle

    def cycle(self) -> None:
        self._cycle()
        if self.options.report_durable:
            # At the end, so that what a sync inside the cycle (for a recovery point, a reset)
            # made durable is reported now rather than after the pause.
            self._report_durable(time.monotonic())

    def _cycle(self) -> None:
        assert self.pins is not None
        self.outage.observe(self.writer.error)
        now = time.monotonic()
        if self.chain_wanted is not None:
            if now >= self.next_chain_try and self.writer.idle:
                self._new_chain(*self.chain_wanted)
            self._status_if_due(now)
            return
        if self._capturing():
            try:
                self._capture_pinned()
            except ContinuityLost as lost:
                self.sync()
                self._new_chain(lost.reason, self._ending())
                return
        due = self.pending is not None and now - self.last_sync >= self.options.sync_interval
        if due or self._pending_bytes() >= self.options.segment_max_bytes:
            self.hand_over()
        self._maintain_wal()
        if self.outage.released is not None and not self.outage.ongoing and self.writer.idle:
            self._new_chain(self.outage.released, self._ending())
            return
        if not self.writer.failing and self.outage.released is None:
            # points and full backups need the log before them durable
            self._run_schedules(now)
            self._answer_requests()
        self._status_if_due(now)
        self.fulls.check(now)

    def _report_durable(self, now: float) -> None:
        synced = self.synced_through
        if synced > self.reported_synced and now - self.last_durable_report >= DURABLE_EVERY:
            self.reported_synced, self.last_durable_report = synced, now
            self.reported_txn = self.durable_txn
            self.on_event("durable", {"txn": self.durable_txn, "synced_through": synced,
                                      "bytes": self.writer.written_bytes})

    def _capturing(self) -> bool:
        """Capture reads the WAL unless the repository cannot take what it reads (the WAL keeps
        it), or the WAL was let go (a new chain is next)."""
        return not self.writer.failing and self.outage.released is None

    def _status_if_due(self, now: float) -> None:
        if now - self.last_status >= STATUS_EVERY_SECONDS:
            self._write_status("protecting")

    def _answer_requests(self) -> None:
        try:
            answer_requests(self.repo, self.db_id, self._request_point, self._request_full)
        except (OSError, CaptureError) as exc:
            message = exc.message if isinstance(exc, CaptureError) else str(exc)
            logger.error("a recovery point asked for %s could not be made: %s", self.db_id,
                         message)

    def _capture_pinned(self) -> None:
        """Pin a new snapshot and capture (pinning.py); the previous pin stays when nothing new
        was found while something captured is not durable yet."""
        assert self.pins is not None
        before = self.last_txn

        def capture() -> bool:
            self._capture()
            return self.last_txn > before or self._all_durable()

        self.pins.pin_then(capture)

    def _all_durable(self) -> bool:
        return self.pending is None and self.writer.idle

    def _capture(self) -> None:
        """Read everything committed since the last capture, handing a segment over whenever a
        segment's worth is pending, so that a backlog never has to fit in memory at once."""
        started = _now_ms()
        while True:
            start = self.follower.position
            room = self.options.segment_max_bytes - self._pending_bytes()
            committed, complete = self.follower.poll(max(min(room, READ_MAX_BYTES), 1))
            seen_at = _now_ms()
            for transaction in committed:
                self._record(transaction, start, seen_at)
            if complete:
                break
            if self._pending_bytes() >= self.options.segment_max_bytes:
                self.hand_over()
        self.captured_at = started

    def _record(self, committed: CommittedTxn, start: WalPosition, seen_at: int) -> None:
        if self.pending is None:
            assert self.chain is not None
            self.pending = SegmentBuilder(self.chain.chain, self.page_size, start, self.compressor)
        self.last_txn += 1
        pages = committed.pages
        committed_at = self.clock.committed_at(pages, seen_at)
        self.pending.add(Transaction(self.last_txn, seen_at, committed.commit_size, pages,
                                     committed_at))
        self.frames_since_checkpoint += len(pages)
        self.fulls.changed(number for number, _image in pages)

    def _pending_bytes(self) -> int:
        return self.pending.page_bytes if self.pending is not None else 0

    def hand_over(self) -> None:
        """Hand every captured transaction to the segment writer, as one segment."""
        if self.pending is None:
            return
        segment = self.pending.finish(self.follower.position)
        self.pending = None
        self.writer.hand_over(segment, self.captured_at)
        self.last_sync = time.monotonic()

    def sync(self) -> bool:
        """Make every captured transaction durable in the repository. False when the repository
        cannot be written (the transactions are kept, and tried again)."""
        self.hand_over()
        return self.writer.wait_durable()

    @property
    def synced_through(self) -> int:
        """Every commit before this time (ms) is durable in the repository."""
        if self._all_durable() and self._capturing():
            return self.captured_at  # all captured is durable, and the last capture saw all
        return self.writer.synced_through

    @property
    def durable_txn(self) -> int:
        """The last transaction durable in the repository."""
        return max(self.durable_floor, self.writer.durable_txn or 0)

    def _ending(self) -> ChainEnd | None:
        """What is proven of the current chain's end, for the next chain's record: only when
        everything it captured is durable."""
        if self.chain is None or self.durable_txn != self.last_txn:
            return None
        return ChainEnd(self.chain.chain, self.last_txn, self.synced_through)

    def _maintain_wal(self) -> None:
        assert self.pins is not None
        # Backfill as soon as the pin allows, so the application's own automatic checkpoints
        # (run inside its commits) find little or nothing left to do.
        if self.frames_since_checkpoint >= self.options.checkpoint_frames and self.pins.checkpoint():
            self.frames_since_checkpoint = 0
        if self.writer.failing:
            if self.outage.must_release():
                self.pins.release()
                self.outage.release()
            return  # no reset can be made while the log is not durable
        if self.outage.released is not None:
            return
        generation = self.follower.position.salt1
        # A reset asked for happens at the application's next write, unless a reader holds one
        # of the WAL's read locks at that instant (a reader that began before the reset, or any
        # connection's checkpoint or snapshot updating a read mark): SQLite then appends to the
        # same generation. Should the WAL grow on in it, the reset is asked for again.
        again_at = self.options.reset_frames * RESET_AGAIN_AFTER
        asked = (self.reset_asked is not None and self.reset_asked[0] == generation
                 and self.follower.frame < self.reset_asked[1] + again_at)
        if (self.follower.frame < self.options.reset_frames or asked
                or time.monotonic() < self.next_reset_try):
            return
        # Catch up outside the write lock, so that under it only the transactions committed
        # meanwhile remain to be made durable and backfilled. Frames leave the WAL at the reset:
        # everything captured before must be durable by then (pinning.py, force_reset).
        for _ in range(CATCH_UP_ROUNDS):
            before = self.last_txn
            self._capture_pinned()
            if not self.sync():
                self.next_reset_try = time.monotonic() + RESET_RETRY_SECONDS
                return
            if self.last_txn - before <= 2:
                break
        self.pins.checkpoint()

        def capture() -> None:
            self._capture()
            self.hand_over()

        reset = self.pins.force_reset(capture, self.writer.wait_durable)
        if not reset:
            self.next_reset_try = time.monotonic() + RESET_RETRY_SECONDS
            return
        self.reset_asked = (generation, self.follower.frame)
        self.on_event("wal-reset", {"frames": self.follower.frame})

    def _run_schedules(self, now: float) -> None:
        every = self.options.recovery_point_every
        if every is not None and now - self.last_point >= every:
            name = time.strftime("scheduled %Y-%m-%dT%H:%M:%SZ", time.gmtime())
            try:
                self.create_point(name, True)
            except (OSError, CaptureError) as exc:
                self.last_point = now  # tried again at the next interval
                message = exc.message if isinstance(exc, CaptureError) else str(exc)
                logger.error("scheduled recovery point of %s failed: %s", self.db_id, message)
                self.on_event("recovery-point-failed", {"name": name, "error": message})
        database_bytes = (self.follower.db_pages or 0) * self.page_size
        if self.fulls.due(now, database_bytes, self.page_size):
            assert self.chain is not None
            if self.sync():  # a full backup is made from the log up to it
                self.fulls.start(self.chain.chain, self.last_txn, self.follower.position)
            else:
                self.fulls.postpone()

    # Recovery points

    def create_point(self, name: str, scheduled: bool = False, *, keep: bool = False
                     ) -> RecoveryPoint:
        """A recovery point at the last transaction captured, made durable first."""
        if self.chain is None:
            raise CaptureError(f"no recovery point {name!r}: no chain is being captured, the "
                               "last one could not be started",
                               hint="Free space in the repository or fix its disk; the protector "
                                    "starts the chain again by itself.")
        if not self.sync():
            raise CaptureError(f"no recovery point {name!r}: the transactions before it cannot "
                               "be written to the repository",
                               hint="Free space in the repository or fix its disk; capture keeps "
                                    "them and tries again.")
        point = RecoveryPoint(name, self.chain.chain, self.last_txn, _now_ms(), scheduled, keep)
        self.repo.write_point(self.db_id, point)
        self.last_point = time.monotonic()
        self.on_event("recovery-point", {"name": name, "txn": point.txn})
        return point

    def _request_point(self, name: str, keep: bool) -> RecoveryPoint:
        self._capture_pinned()  # everything committed before the request was seen
        return self.create_point(name, keep=keep)

    def _request_full(self) -> int | None:
        """A full backup now, as asked: the transaction it is of, or None if one is under way."""
        if self.fulls.process is not None or self.chain is None:
            return None
        self._capture_pinned()
        if not self.sync():
            return None
        self.fulls.start(self.chain.chain, self.last_txn, self.follower.position)
        return self.last_txn if self.fulls.process is not None else None

    # Chains and full backups

    def _new_chain(self, reason: str, previous: ChainEnd | None) -> None:
        """Start a chain at the database as it is now, with a full backup as its first point.
        When that fails (the repository cannot be written), it is tried again later; a chain
        number is never used again once its chain file was written."""
        assert self.pins is not None
        number = self.next_chain
        self.chain_wanted = None
        self.outage.released = None
        self.pending = None
        self.fulls.new_chain()
        try:
            result = self._first_full(number, reason, previous)
        except (OSError, CaptureError) as exc:
            message = exc.message if isinstance(exc, CaptureError) else str(exc)
            logger.error("cannot start chain %d of %s (%s); trying again in %g s", number,
                         self.db_id, message, CHAIN_RETRY_SECONDS)
            self.on_event("new-chain-failed", {"chain": number, "error": message})
            self.chain = None  # nothing is captured until a chain starts
            self.chain_wanted = (reason, previous)
            self.next_chain_try = time.monotonic() + CHAIN_RETRY_SECONDS
            return
        self.durable_floor = max(self.durable_floor, result.full.txn)
        self.fulls.done(result)

    def _first_full(self, number: int, reason: str, previous: ChainEnd | None) -> FullResult:
        assert self.pins is not None
        extra = self.pins.extra_pin()
        try:
            self.follower.start_fresh()  # what the WAL holds now is part of the full's image
            chain = Chain(number, _now_ms(), self.last_txn + 1, reason,
                          str(self.db_path.resolve()), previous)
            self.repo.write_chain(self.db_id, chain)
            # Its number is taken once its file exists: a chain file that failed takes none, so
            # the chain before keeps ending where it ended.
            self.chain, self.last_txn = chain, chain.first_txn
            self.next_chain = number + 1
            logger.info("new chain %s for %s: %s", number, self.db_id, reason)
            self.on_event("new-chain", {"chain": number, "reason": reason, "txn": self.last_txn})
            result = FullBackupProcess.copy(self.repo, self.db_id, number, self.last_txn,
                                            self._full_source(), self.fulls.last_full).wait(
                lambda done, total: self.on_event("full-backup-progress",
                                                  {"pages": done, "of": total}))
            self._capture_pinned()  # pinned at or before the captured position again
            self.sync()  # a first pin may hold no place in the WAL (pinning.py)
        finally:
            extra.close()
        return result

    def _full_source(self) -> FullSource:
        pages = self.follower.db_pages or file_pages(self.db_file, self.page_size)
        return FullSource(self.db_file, self.follower.wal_path, self.page_size, pages,
                          dict(self.follower.page_frames), self.follower.position)

    def _write_status(self, state: str) -> None:
        self.last_status = time.monotonic()
        lags = sorted(self.writer.lags())
        status = ProtectorStatus(
            state=state, updated_at=_now_ms(), synced_through=self.synced_through,
            chain=self.chain.chain if self.chain else None, last_txn=self.last_txn,
            source_path=str(self.db_path.resolve()), position=self.follower.position,
            lag_p50=lags[len(lags) // 2] if lags else None,
            lag_p99=lags[int(len(lags) * 0.99)] if lags else None,
            durable_txn=self.durable_txn, error=self.outage.error)
        if self.upload_progress is not None:
            status = self.upload_progress.report(status)
        try:
            self.repo.write_status(self.db_id, status)
        except OSError as exc:
            self.outage.status_failed(exc)
        else:
            self.outage.status_written()


def _now_ms() -> int:
    return int(time.time() * 1000)
