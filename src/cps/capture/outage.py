"""What the protector does while the repository cannot be written (a full disk, an I/O error).

Nothing captured is dropped while the process lives: segments that cannot be written stay queued
and are tried again every second (segment_writer.py), and capture stops reading the WAL, whose
frames its pinned snapshot keeps. When space returns, the queue is written and capture goes on
where it stopped: the same chain, no gap.

The WAL grows meanwhile, on the database's own disk. It may grow to `wal_limit` bytes; past that,
the protector lets it go (it releases its pinned snapshot, so checkpoints backfill and the WAL
starts over) rather than fill the database's disk and stop the mail: what was captured stays
queued, but the transactions after it leave the WAL uncaptured. When the repository can be written
again, the protector writes the queue and starts a new chain with a full backup, whose reason
says what happened; the timeline shows the gap. This is pgBackRest's archive-push-queue-max
choice: the database's availability first, its backups' continuity second, and said loudly.

Each outage is reported once when it begins (`sync-failed`, logged as an error) and once when it
ends (`sync-recovered`), not at every retry; the status file carries the error while it lasts.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

logger = logging.getLogger(__name__)

Events = Callable[[str, dict[str, object]], None]


class Outage:
    def __init__(self, db_id: str, wal_path: Path, wal_limit: int, on_event: Events) -> None:
        self.db_id = db_id
        self.wal_path = wal_path
        self.wal_limit = wal_limit
        self.on_event = on_event
        self.since: float | None = None  # when writes began to fail (time.time())
        self.error: str | None = None
        self.released: str | None = None  # why the WAL was let go, for the next chain's reason
        self.status_error: str | None = None

    @property
    def ongoing(self) -> bool:
        return self.since is not None

    def observe(self, error: str | None) -> None:
        """The segment writer's state at this cycle: its error while it fails, else None."""
        if error is not None and self.since is None:
            self.since, self.error = time.time(), error
            logger.error("the repository cannot be written for %s (%s): captured transactions "
                         "are kept and retried, the WAL is held up to %d MiB", self.db_id, error,
                         self.wal_limit >> 20)
            self.on_event("sync-failed", {"error": error})
        elif error is None and self.since is not None:
            seconds = round(time.time() - self.since, 3)
            self.since, self.error = None, None
            logger.info("the repository of %s can be written again after %g s", self.db_id,
                        seconds)
            self.on_event("sync-recovered", {"seconds": seconds})

    def must_release(self) -> bool:
        """Whether the WAL has outgrown its limit during this outage, and not been let go yet."""
        if self.since is None or self.released is not None:
            return False
        try:
            return self.wal_path.stat().st_size > self.wal_limit
        except FileNotFoundError:
            return False

    def release(self) -> None:
        started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.since or time.time()))
        self.released = (f"the repository could not be written from {started} ({self.error}) "
                         f"and the WAL passed its limit of {self.wal_limit >> 20} MiB: the "
                         "protector let it go so that the database would not fill its disk, and "
                         "what was committed after the last captured transaction was not captured")
        logger.error("%s: %s", self.db_id, self.released)
        self.on_event("wal-released", {"limit": self.wal_limit, "error": self.error})

    def status_failed(self, exc: OSError) -> None:
        """The status file could not be written: said once, until it can be again."""
        error = exc.strerror or str(exc)
        if self.status_error is None:
            logger.warning("cannot write the status of %s (%s); it is advisory, capture goes on",
                           self.db_id, error)
        self.status_error = error

    def status_written(self) -> None:
        self.status_error = None
