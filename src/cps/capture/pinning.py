"""How CPS owns checkpointing without blocking writers: pinned readers and short forced resets.

SQLite resets its WAL (and so discards frames) only when every frame has been copied back into the
database ("backfilled") and no reader still uses a WAL snapshot. A checkpoint backfills no further
than the oldest open reader's snapshot, and a truncating or restarting checkpoint waits for every
reader to be on the newest one. CPS therefore always holds one read transaction, on a read-only
connection, whose snapshot it has already captured past:

    1. begin a read transaction on the spare connection (its snapshot ends at some frame m)
    2. capture every frame now in the WAL (up to some e >= m)
    3. end the read transaction on the other connection; swap

At every instant some CPS snapshot ends at or before the captured position, so no checkpoint can
backfill past it and no reset can happen before everything is captured, whoever checkpoints.
Read-only connections never checkpoint or delete the WAL when they close.

Captured is not yet durable (the segment writer makes it so a moment later), and until then the
WAL must keep it. A snapshot begun when every frame was already backfilled holds no place in the
WAL: SQLite reads the database file alone for it. It does keep anything newer from being
backfilled, so the WAL cannot be reset while newer frames exist; but with nothing committed since
the previous snapshot began, the WAL could be reset as soon as that one is released. So when step 2
finds no new transaction while a captured one is not durable yet, the new snapshot is released
instead and the previous one stays: no frame leaves the WAL before it is durable in the repository.

Under continuous writes the WAL would then never reset and would grow without bound. So when it
passes `reset_frames`, CPS makes everything captured durable, then takes the write lock for a
moment (BEGIN IMMEDIATE: writers wait, nobody is refused), captures the last frames, pins the end of
the WAL and drops the older pin, and backfills what is left with a PASSIVE checkpoint while the last
frames are written; once they are durable it pins again (with everything backfilled, a pin that
holds no place) and lets go. The next writer then starts the WAL over, unless a reader holds one
of the WAL's read locks at that instant (SQLite then appends instead, and the protector asks
again). Writers wait for one capture read and the longer of one short checkpoint and one short
segment write (a few milliseconds when checkpoints keep up). Should the segment not become
durable, the pin at the end keeps the WAL.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

from ..errors import CaptureError

WRITE_LOCK_PATIENCE_SECONDS = 0.2
WRITE_LOCK_RETRY_SECONDS = 0.0002


class ReaderPins:
    def __init__(self, db_path: Path) -> None:
        self._uri = f"file:{quote(str(db_path.resolve()))}?mode=ro"
        self._pins = [_connect(self._uri, readonly=True), _connect(self._uri, readonly=True)]
        self._writer = _connect(str(db_path), readonly=False)
        self._checkpointer = _connect(str(db_path), readonly=False)
        self._active: int | None = None

    def pin_then(self, capture: Callable[[], bool]) -> None:
        """Pin a new snapshot, capture, then release the previous pin (steps 1 to 3); or the new
        one, when `capture` says that the previous one must stay."""
        spare = self._begin_spare()
        try:
            keep_new = capture()
        except BaseException:
            self._pins[spare].execute("COMMIT")  # the previous pin stays the one held
            raise
        if not keep_new and self._active is not None:
            self._pins[spare].execute("COMMIT")
            return
        self._make_active(spare)

    def checkpoint(self) -> bool:
        """A PASSIVE checkpoint: backfills what the pins allow, never waits, never blocks writers.
        True when every frame in the WAL is backfilled."""
        return _all_backfilled(self._passive_checkpoint())

    def force_reset(self, capture: Callable[[], None], durable: Callable[[], bool]) -> bool:
        """Make the next writer start the WAL over (see the module docstring). `capture` reads
        the last frames and hands them over to be written; `durable` waits until they are. All
        captured before must be durable already: the last frames are then the only ones that are
        not, and newer than the previous pin, so not backfilled when the new pin begins, which
        therefore holds a place in the WAL. False when the write lock, durability or a full
        backfill could not be had in time; try again later."""
        if not self._take_write_lock():
            return False
        try:
            capture()
            self._make_active(self._begin_spare())
            backfilled = self._checkpoint_until_free()  # while the last frames are written
            if not durable() or not backfilled:
                return False  # the new pin keeps what is not durable, and the WAL
            # Begun again with everything backfilled, the pin holds no place in the WAL.
            assert self._active is not None
            self._pins[self._active].execute("COMMIT")
            _begin_read(self._pins[self._active])
            return True
        finally:
            self._writer.execute("ROLLBACK")

    def _begin_spare(self) -> int:
        """Begin a snapshot on the connection that holds no pin; its index."""
        spare = 0 if self._active != 0 else 1
        _begin_read(self._pins[spare])
        return spare

    def _make_active(self, spare: int) -> None:
        """Release the pin held, if any: `spare`'s snapshot is the pin from now on."""
        if self._active is not None:
            self._pins[self._active].execute("COMMIT")
        self._active = spare

    def _take_write_lock(self) -> bool:
        # SQLite's busy handler sleeps in growing steps and rarely wins against a busy writer;
        # trying often, with no busy wait of our own, takes the lock between two transactions.
        deadline = time.monotonic() + WRITE_LOCK_PATIENCE_SECONDS
        while True:
            try:
                self._writer.execute("BEGIN IMMEDIATE")
                return True
            except sqlite3.OperationalError:
                if time.monotonic() > deadline:
                    return False
                time.sleep(WRITE_LOCK_RETRY_SECONDS)

    def _checkpoint_until_free(self) -> bool:
        # A checkpoint the application started after its last commit may still hold the
        # checkpoint lock for a moment; nobody can add frames while we hold the write lock.
        deadline = time.monotonic() + WRITE_LOCK_PATIENCE_SECONDS
        while True:
            result = self._passive_checkpoint()
            busy, _log, _done = result
            if not busy or time.monotonic() > deadline:
                return _all_backfilled(result)
            time.sleep(WRITE_LOCK_RETRY_SECONDS)

    def _passive_checkpoint(self) -> tuple[int, int, int]:
        """(busy, frames in the WAL, frames backfilled)."""
        busy, log, done = self._checkpointer.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        return int(busy), int(log), int(done)

    def release(self) -> None:
        """Hold no snapshot any more: checkpoints may backfill every frame and the WAL may start
        over, whatever was captured (outage.py). The next `pin_then` pins again."""
        if self._active is not None:
            self._pins[self._active].execute("COMMIT")
            self._active = None

    def extra_pin(self) -> sqlite3.Connection:
        """A further pinned snapshot, for a full backup: the caller captures right after taking
        it, and closes it when the backup is done."""
        connection = _connect(self._uri, readonly=True)
        _begin_read(connection)
        return connection

    def close(self) -> None:
        # Writers first, while the read-only pins keep the WAL from being checkpointed away.
        self._writer.close()
        self._checkpointer.close()
        for connection in self._pins:
            connection.close()


def _connect(target: str, *, readonly: bool) -> sqlite3.Connection:
    try:
        if readonly and not target.startswith("file:"):
            target = f"file:{quote(target)}?mode=ro"
        connection = sqlite3.connect(
            target, uri=readonly, isolation_level=None, check_same_thread=False,
            timeout=0 if not readonly else 5.0,
        )
    except sqlite3.OperationalError as exc:
        raise CaptureError(f"cannot open the database: {exc}") from exc
    return connection


def _all_backfilled(result: tuple[int, int, int]) -> bool:
    """A busy checkpoint (another one held the checkpoint lock) did nothing, and reports -1 frames
    in the WAL and -1 backfilled: equal, but it says nothing."""
    busy, log, done = result
    return not busy and log == done


def _begin_read(connection: sqlite3.Connection) -> None:
    connection.execute("BEGIN")
    # A read transaction takes its snapshot at its first read.
    connection.execute("SELECT count(*) FROM sqlite_schema").fetchone()
