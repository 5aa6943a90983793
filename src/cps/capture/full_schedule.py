"""When the protector takes its later full backups, and the one being taken.

A chain's first full backup is taken as the chain starts (protector.py); the later ones come every
`full_every`, or sooner once the pages changed since the last one (each counted once,
changed_pages.py) pass a share of the database and a minimum size, so that a restore never has
more than that to replay after its full backup, but not more often than every
`full_after_changes_interval`. Each is synthesised from the repository by a child process
(full_process.py), which needs the log up to it durable first and nothing else; a failed one is
tried again FULL_RETRY_SECONDS later, its changed pages counted again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable

from ..errors import CaptureError
from ..repository import FullRef, Repository, WalPosition
from .changed_pages import ChangedPages
from .full_backup import FullResult
from .full_process import FullBackupProcess
from .options import ProtectOptions

logger = logging.getLogger(__name__)

FULL_RETRY_SECONDS = 600.0  # after a failed full backup (sooner when full_every is shorter)

Events = Callable[[str, dict[str, object]], None]


class FullSchedule:
    def __init__(self, repo: Repository, db_id: str, timing: ProtectOptions, on_event: Events
                 ) -> None:
        self.repo = repo
        self.db_id = db_id
        self.timing = timing
        self.on_event = on_event
        self.last_full: FullRef | None = None
        self.last_started = 0.0  # time.monotonic() of the last full backup begun
        self.process: FullBackupProcess | None = None
        self._changed = ChangedPages()
        self._changed_before = ChangedPages()  # given back when a full backup fails

    def changed(self, numbers: Iterable[int]) -> None:
        """Pages a captured transaction wrote."""
        self._changed.add(numbers)

    def due(self, now: float, database_bytes: int, page_size: int) -> bool:
        if self.process is not None:
            return False
        if now - self.last_started >= self.timing.full_every:
            return True
        if now - self.last_started < self.timing.full_after_changes_interval:
            return False
        threshold = max(self.timing.full_after_changes_min,
                        database_bytes * self.timing.full_after_changes_share)
        return len(self._changed) * page_size >= threshold

    def start(self, chain: int, txn: int, position: WalPosition) -> None:
        """Synthesise a full backup at `txn` (durable in the repository) from the last one."""
        previous = self.last_full
        self.last_started = time.monotonic()
        if previous is None or previous.chain != chain or txn == previous.txn:
            return
        self._changed_before, self._changed = self._changed, ChangedPages()
        self.process = FullBackupProcess.synthesize(self.repo, self.db_id, previous, txn,
                                                    position)
        self.on_event("full-backup-started", {"txn": txn, "pid": self.process.pid})

    def postpone(self) -> None:
        """Not now (the log before it cannot be made durable): at the next interval."""
        self.last_started = time.monotonic()

    def check(self, now: float) -> None:
        """Take the result of the full backup being made, when it is done."""
        running = self.process
        if running is None:
            return
        try:
            result = running.result()
        except CaptureError as exc:
            self.process = None
            retry = min(FULL_RETRY_SECONDS, self.timing.full_every)
            logger.error("full backup of %s at transaction %d failed, capture goes on and it is "
                         "tried again in %g s: %s", self.db_id, running.txn, retry, exc.message)
            self.on_event("full-backup-failed", {"txn": running.txn, "error": exc.message})
            self.last_started = now - self.timing.full_every + retry
            self._changed.absorb(self._changed_before)
            return
        if result is not None:
            self.process = None
            self.done(result)

    def new_chain(self) -> None:
        """A chain starts: the full backup being made would end the old one; nothing changed."""
        self.stop()
        self._changed = ChangedPages()

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()
            self.process = None

    def done(self, result: FullResult) -> None:
        self.last_full = result.full
        self.last_started = time.monotonic()
        self.on_event("full-backup", {"txn": result.full.txn, "pages": result.pages,
                                      "pages_stored": result.pages_stored})
