"""Captured transactions made durable on a thread of their own, so that capture goes on polling.

Capture hands over each segment as soon as it is complete (compressed already, as it was built)
and returns to the WAL; this thread seals, writes and fsyncs the segments one at a time, in the
order they were handed over (the repository needs segments in transaction order). What must not
happen before the log is durable (a forced WAL reset, a recovery point, a full backup, the stop)
waits for it with `wait_durable`.
It runs at the protector's own priority: a lower one, under other load, would let the WAL grow
while capture waits for it.

Memory stays bounded: a hand-over waits while it would leave more than `max_waiting_bytes` of
compressed segments not yet durable, so capture slows to the disk's pace instead of piling
transactions up.

A segment that cannot be written (disk full, I/O error) stays first in line and is tried again
every RETRY_SECONDS, or at once when someone waits for it; nothing after it is written before it.
While that lasts the writer is `failing`: the protector then stops reading the WAL (whose frames
its pinned snapshot keeps) rather than wait here, and reports each failure.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from dataclasses import dataclass

from ..repository import BuiltSegment, Repository

logger = logging.getLogger(__name__)

RETRY_SECONDS = 1.0
LAGS_KEPT = 10_000


@dataclass(frozen=True, slots=True)
class _Handed:
    segment: BuiltSegment
    captured_at: int  # every commit before this time (ms) is in this segment or an earlier one

    @property
    def size(self) -> int:
        return self.segment.compressed_size


class SegmentWriter:
    def __init__(self, repo: Repository, db_id: str, max_waiting_bytes: int) -> None:
        self.repo = repo
        self.db_id = db_id
        self.max_waiting_bytes = max_waiting_bytes
        self._waiting: collections.deque[_Handed] = collections.deque()
        self._waiting_bytes = 0
        self._written_bytes = 0  # of segments, as stored
        self._failed_attempts = 0
        self._failing = False  # the last attempt failed
        self._failures: list[str] = []  # not yet reported
        self._fatal: BaseException | None = None
        self._retry_now = False
        self._closing = False
        self._given_up = False  # closing, and the last attempt failed: the rest stays unwritten
        self._synced_through = 0
        self._durable_txn: int | None = None  # the last transaction written, this run
        self._error: str | None = None  # why the last attempt failed, while it did
        self._lags: collections.deque[float] = collections.deque(maxlen=LAGS_KEPT)
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="cps-segment-writer", daemon=True)
        self._thread.start()

    def hand_over(self, segment: BuiltSegment, captured_at: int) -> None:
        """Queue `segment` to be written after those handed over before it; waits first while
        it would make more than `max_waiting_bytes` wait."""
        with self._changed:
            handed = _Handed(segment, captured_at)
            self._changed.wait_for(
                lambda: not self._waiting or self._failing or self._fatal is not None
                or self._waiting_bytes + handed.size <= self.max_waiting_bytes)
            self._raise_fatal()
            self._waiting.append(handed)
            self._waiting_bytes += handed.size
            self._changed.notify_all()

    def wait_durable(self) -> bool:
        """Wait until everything handed over is durable: True, or False as soon as an attempt to
        write fails (the segments stay queued and are tried again)."""
        with self._changed:
            failed_before = self._failed_attempts
            self._retry_now = True
            self._changed.notify_all()
            self._changed.wait_for(lambda: not self._waiting or self._fatal is not None
                                   or self._failed_attempts > failed_before)
            self._raise_fatal()
            return not self._waiting

    @property
    def idle(self) -> bool:
        """Nothing handed over is waiting to be written."""
        with self._changed:
            return not self._waiting

    @property
    def failing(self) -> bool:
        """The last attempt to write failed: what is handed over now may wait long."""
        with self._changed:
            return self._failing

    @property
    def error(self) -> str | None:
        """Why the last attempt to write failed, while the writer is failing."""
        with self._changed:
            return self._error if self._failing else None

    @property
    def durable_txn(self) -> int | None:
        """The last transaction written to the repository by this writer (None: none yet)."""
        with self._changed:
            return self._durable_txn

    @property
    def synced_through(self) -> int:
        """Every commit before this time (ms) is durable in the repository."""
        with self._changed:
            return self._synced_through

    @property
    def written_bytes(self) -> int:
        """Bytes of segments this writer has made durable, as stored (compressed)."""
        with self._changed:
            return self._written_bytes

    def lags(self) -> list[float]:
        """Seconds from first seen to durable, for the last LAGS_KEPT transactions."""
        with self._changed:
            return list(self._lags)

    def failures(self) -> list[str]:
        """Why writes failed since the last call."""
        with self._changed:
            self._raise_fatal()
            reported, self._failures = self._failures, []
            return reported

    def close(self) -> None:
        """Write what is waiting (one more attempt) and stop the thread."""
        with self._changed:
            self._closing = True
            self._changed.notify_all()
        self._thread.join()

    def _raise_fatal(self) -> None:
        if self._fatal is not None:
            raise self._fatal

    def _run(self) -> None:
        try:
            while (handed := self._next()) is not None:
                self._write(handed)
        except BaseException as exc:  # a bug, not a disk: the protector raises it
            with self._changed:
                self._fatal = exc
                self._changed.notify_all()

    def _next(self) -> _Handed | None:
        with self._changed:
            self._changed.wait_for(lambda: self._waiting or self._closing)
            return self._waiting[0] if self._waiting and not self._given_up else None

    def _write(self, handed: _Handed) -> None:
        try:
            self.repo.write_segment(self.db_id, handed.segment)
        except OSError as exc:
            self._failed(handed, exc)
            return
        durable_at = time.time()
        with self._changed:
            self._waiting.popleft()
            self._waiting_bytes -= handed.size
            self._written_bytes += handed.size
            self._failing = False
            self._synced_through = handed.captured_at
            self._durable_txn = handed.segment.txns[1]
            self._lags.extend(durable_at - seen_at / 1000 for seen_at in handed.segment.seen_at)
            self._changed.notify_all()

    def _failed(self, handed: _Handed, exc: OSError) -> None:
        count = len(handed.segment.seen_at)
        logger.error("cannot write a segment of %s (%s); %d transactions kept, retrying",
                     self.db_id, exc.strerror or exc, count)
        with self._changed:
            self._failed_attempts += 1
            self._failing = True
            self._error = exc.strerror or str(exc)
            self._failures.append(exc.strerror or str(exc))
            self._retry_now = False
            self._changed.notify_all()
            if self._closing:
                self._given_up = True
                lost = sum(len(h.segment.seen_at) for h in self._waiting)
                logger.error("stopping: %d captured transactions of %s were not written (the "
                             "next start captures them again if the WAL still holds them)",
                             lost, self.db_id)
                return
            self._changed.wait_for(lambda: self._retry_now or self._closing, RETRY_SECONDS)

