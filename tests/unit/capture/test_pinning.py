"""The pins against a real SQLite database: a forced reset happens only once the last frames are
durable, and a pin that holds no place in the WAL never replaces one that does while something
captured is not durable."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest

from cps.capture.pinning import ReaderPins


@pytest.fixture
def app(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    connection = sqlite3.connect(tmp_path / "app.db", isolation_level=None)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA wal_autocheckpoint=0")
    connection.execute("CREATE TABLE t(x)")
    yield connection
    connection.close()


@pytest.fixture
def pins(tmp_path: Path, app: sqlite3.Connection) -> Iterator[ReaderPins]:
    reader_pins = ReaderPins(tmp_path / "app.db")
    reader_pins.pin_then(lambda: True)
    yield reader_pins
    reader_pins.close()


def salt(tmp_path: Path) -> bytes:
    """Salt-1 of the WAL header: it changes at every reset."""
    return (tmp_path / "app.db-wal").read_bytes()[16:20]


def truncated(tmp_path: Path) -> bool:
    """Whether another connection's TRUNCATE checkpoint, not waiting, emptied the WAL."""
    with closing(sqlite3.connect(tmp_path / "app.db", timeout=0)) as other:
        busy, _frames, _done = other.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    return busy == 0


def test_a_forced_reset_waits_for_the_last_frames_to_be_durable(
        tmp_path: Path, app: sqlite3.Connection, pins: ReaderPins) -> None:
    app.execute("INSERT INTO t VALUES (1)")
    before = salt(tmp_path)
    assert not pins.force_reset(lambda: None, lambda: False)  # captured, never durable
    app.execute("INSERT INTO t VALUES (2)")
    assert salt(tmp_path) == before, "the WAL was reset before its frames were durable"
    assert not truncated(tmp_path)

    assert pins.force_reset(lambda: None, lambda: True)
    app.execute("INSERT INTO t VALUES (3)")
    assert salt(tmp_path) != before, "the WAL was not reset"


def test_a_pin_that_holds_no_place_does_not_replace_one_that_does(
        tmp_path: Path, app: sqlite3.Connection, pins: ReaderPins) -> None:
    app.execute("INSERT INTO t VALUES (1)")
    pins.pin_then(lambda: True)  # its snapshot ends after the insert
    assert pins.checkpoint(), "every frame should be backfilled"
    pins.pin_then(lambda: False)  # this one holds no place: the previous one must stay
    assert not truncated(tmp_path)
    pins.pin_then(lambda: True)  # now let go
    assert truncated(tmp_path)


def test_a_checkpoint_that_found_the_lock_taken_is_not_a_complete_one(
        tmp_path: Path, app: sqlite3.Connection, pins: ReaderPins) -> None:
    """Another connection's FULL checkpoint takes the checkpoint lock, then waits for the write
    lock the forced reset holds: the reset's own checkpoint is busy (SQLite then reports -1
    frames, backfilled and in the WAL alike), and the reset must say it did not happen."""
    app.execute("INSERT INTO t VALUES (1)")
    other = sqlite3.connect(tmp_path / "app.db", timeout=2, check_same_thread=False)

    def full_checkpoint() -> None:
        # Busy at once, without waiting, when the probe below holds the checkpoint lock.
        while other.execute("PRAGMA wal_checkpoint(FULL)").fetchone() == (1, -1, -1):
            pass

    waiting = threading.Thread(target=full_checkpoint)

    def capture_while_the_other_checkpoint_waits() -> None:
        waiting.start()
        with closing(sqlite3.connect(tmp_path / "app.db", timeout=0)) as probe:
            while probe.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()[0] == 0:
                pass  # until the other checkpoint holds the lock

    try:
        assert not pins.force_reset(capture_while_the_other_checkpoint_waits, lambda: True)
    finally:
        waiting.join()
        other.close()
    assert pins.force_reset(lambda: None, lambda: True)
