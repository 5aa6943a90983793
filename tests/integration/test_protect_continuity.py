"""Continuity across everything the application and the operator do to a protected database:
restarts of the protector, writes and checkpoints while nothing protects it, checkpoints while
something does, journal mode switches, connections closing. Every chain either continues provably
or a new one starts and says why; restores on every side equal reference copies.
"""

from __future__ import annotations

import random
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from cps.capture import ProtectOptions, Protector
from cps.capture import protector as protector_module
from cps.repository import ProtectorStatus, Repository
from tests.conftest import run_cps
from tests.integration.protect_helpers import (
    QUICK,
    application,
    at_argument,
    oracle_store,
    protecting,
    read_only,
    restore_refused,
    timeline,
    wait_until,
    workload,
)

SEED = 5151

WRITE_ONE_MESSAGE = """
import sys
from cps.store import MailDatabase
with MailDatabase.open(sys.argv[1]) as db:
    db.deliver(b"Subject: one message\\r\\n\\r\\nwritten by a short-lived process\\r\\n",
               ["user001@example.com"])
"""


def wal(db: Path) -> Path:
    return Path(f"{db}-wal")


def assert_plain_reason(reason: str) -> None:
    """A reason an operator can read: a sentence about the WAL, no exception text."""
    assert "WAL" in reason and len(reason.split()) >= 5, reason
    assert "Error" not in reason and "Traceback" not in reason, reason


def test_restart_without_writes_resumes_the_chain(tmp_path: Path) -> None:
    db, repo, oracle = oracle_store(tmp_path)
    with application(db, seed=SEED) as app:
        with protecting(db, repo, *QUICK) as protector:
            app.run(ops=20)
            oracle.point("before the restart")
            protector.stop()
        with protecting(db, repo, *QUICK) as protector:
            assert protector.named("resumed") and not protector.named("new-chain")
            app.run(ops=20)
            oracle.point("after the restart")
            protector.stop()
        app.close()
    view = timeline(repo)
    assert len(view["chains"]) == 1
    assert view["chains"][0]["last_txn"] == oracle.references[-1].txn
    oracle.check_points()
    oracle.check_latest()


def test_writes_and_truncation_while_unprotected_start_a_new_chain(tmp_path: Path) -> None:
    db, repo, oracle = oracle_store(tmp_path)
    with application(db, seed=SEED) as app:
        with protecting(db, repo, *QUICK) as protector:
            app.run(ops=40)
            oracle.point("before the gap")
            protector.stop()
        inside_gap = int(time.time() * 1000)
        app.run(ops=30)
        assert app.run(checkpoint="TRUNCATE")["busy"] == 0
        assert wal(db).stat().st_size == 0
        with protecting(db, repo, *QUICK) as protector:
            [started] = protector.named("new-chain")
            app.run(ops=20)
            oracle.point("after the gap")
            protector.stop()
        app.close()

    assert_plain_reason(started["reason"])
    first, second = timeline(repo)["chains"]
    assert second["reason"] == started["reason"]
    assert second["gap_before"] is not None
    oracle.check_points()
    oracle.check_latest()
    refused = restore_refused(repo, tmp_path / "gap.db", "--at", at_argument(inside_gap))
    assert refused.returncode == 31
    message = refused.stderr.decode()
    assert "in a gap" in message and second["reason"] in message
    for chain in (first, second):
        assert f"transactions {chain['first_txn']} to {chain['last_txn']}" in message, message


def test_application_truncating_the_wal_never_breaks_the_chain(tmp_path: Path) -> None:
    """CPS owns checkpointing, but an application may still ask for TRUNCATE checkpoints between
    its writes: each one waits (SQLite's busy handler) while CPS's pinned snapshot holds the WAL,
    and gives up or truncates once CPS has moved on. Either way nothing uncaptured may be lost."""
    db, repo, oracle = oracle_store(tmp_path)
    rng = random.Random(SEED)
    checkpoints: list[dict[str, Any]] = []
    with application(db, seed=SEED) as app, protecting(db, repo, *QUICK) as protector:
        for step in range(3):
            checkpoints += app.run(ops=rng.randint(3, 8), truncate=True)["checkpoints"]
            oracle.point(f"p{step}")
        protector.stop()
        app.close()
    assert len(protector.named("new-chain")) == 1  # the first protection's, and no other
    truncated = sum(1 for c in checkpoints if not c["busy"])
    assert len(timeline(repo)["chains"]) == 1, f"{truncated} of {len(checkpoints)} truncations ran"
    oracle.check_points()
    oracle.check_latest()


def test_journal_mode_switch_while_unprotected_starts_a_new_chain(tmp_path: Path) -> None:
    db, repo, oracle = oracle_store(tmp_path)
    with application(db, seed=SEED) as app, protecting(db, repo, *QUICK) as protector:
        app.run(ops=30)
        oracle.point("in WAL mode")
        protector.stop()
        app.close()
    set_journal_mode(db, "delete")
    workload(db, ops=20, seed=1)
    set_journal_mode(db, "wal")
    with application(db, seed=SEED + 1) as app, protecting(db, repo, *QUICK) as protector:
        [started] = protector.named("new-chain")
        app.run(ops=20)
        oracle.point("back in WAL mode")
        protector.stop()
        app.close()
    assert_plain_reason(started["reason"])
    assert len(timeline(repo)["chains"]) == 2
    oracle.check_points()
    oracle.check_latest()


def set_journal_mode(db: Path, mode: str) -> None:
    with closing(sqlite3.connect(db)) as connection:
        assert connection.execute(f"PRAGMA journal_mode={mode}").fetchone()[0] == mode


def test_database_not_in_wal_mode_is_refused_and_left_untouched(tmp_path: Path) -> None:
    db, repo, _oracle = oracle_store(tmp_path)
    set_journal_mode(db, "delete")
    before = db.read_bytes()
    result = run_cps("protect", db, "--repo", repo, check=False)
    message = result.stderr.decode()
    assert result.returncode == 21, message
    assert "not in WAL mode" in message and "PRAGMA journal_mode=WAL" in message
    assert db.read_bytes() == before
    assert not wal(db).exists() and not Path(f"{db}-shm").exists()


def test_protection_never_changes_the_schema(tmp_path: Path) -> None:
    db, repo, _oracle = oracle_store(tmp_path)
    workload(db, ops=20, seed=1)
    before = schema(db)
    with application(db, seed=SEED) as app, \
            protecting(db, repo, *QUICK, "--full-every", "300ms") as protector:
        app.run(ops=60)
        protector.wait_for("full-backup", count=2)
        protector.stop()
        app.close()
    assert schema(db) == before


def schema(db: Path) -> tuple[object, ...]:
    """Everything a database says about its own definition and mode."""
    with closing(read_only(db)) as connection:
        rows = connection.execute("SELECT * FROM sqlite_schema ORDER BY rowid").fetchall()
        pragmas = [connection.execute(f"PRAGMA {name}").fetchone()[0] for name in (
            "schema_version", "user_version", "application_id", "journal_mode", "page_size",
            "auto_vacuum", "encoding")]
    return (rows, pragmas)


def test_application_closing_its_last_connection_keeps_the_wal(tmp_path: Path) -> None:
    """A process that opens the database, writes and closes must not be able to checkpoint and
    delete the WAL under the protector: the protector's own SQLite locks must hold all along
    (POSIX record locks are per process, so a protector that opened and closed the database file
    itself would lose them without a word)."""
    db, repo, oracle = oracle_store(tmp_path)
    run_cps("store", "mailbox", "create", db, "user001@example.com")
    # Ready means its first full backup has read the database file; more full backups, and
    # every capture cycle, run between the writers.
    with protecting(db, repo, *QUICK, "--full-every", "200ms") as protector:
        for writer in range(3):
            written = subprocess.run([sys.executable, "-c", WRITE_ONE_MESSAGE, str(db)])
            assert written.returncode == 0
            assert wal(db).exists() and wal(db).stat().st_size > 0, f"writer {writer} deleted the WAL"
            oracle.point(f"after writer {writer} closed")
        protector.stop()
    assert wal(db).exists() and wal(db).stat().st_size > 0
    with application(db, seed=SEED) as app, protecting(db, repo, *QUICK) as protector:
        assert protector.named("resumed") and not protector.named("new-chain")
        app.run(ops=30)
        oracle.point("later")
        protector.stop()
        app.close()
    assert len(timeline(repo)["chains"]) == 1
    oracle.check_points()
    oracle.check_latest()


def test_changes_while_unprotected_with_no_wal_left_start_a_new_chain(tmp_path: Path) -> None:
    db, repo, oracle = oracle_store(tmp_path)
    with protecting(db, repo, *QUICK) as protector:
        oracle.point("empty")  # the full backup of a database with an empty WAL
        protector.stop()
    workload(db, ops=30, seed=1)  # its last connection checkpoints and deletes the WAL
    assert not wal(db).exists()
    with application(db, seed=SEED) as app, protecting(db, repo, *QUICK) as protector:
        app.run(ops=10)
        oracle.point("later")
        protector.stop()
        app.close()
    assert len(protector.named("new-chain")) == 1
    oracle.check_latest()


def test_clean_stop_right_after_a_wal_reset_resumes_the_chain(tmp_path: Path) -> None:
    """A transaction that spilled into the WAL and rolled back can be the one that reset it."""
    db, repo, oracle = oracle_store(tmp_path)
    with application(db, seed=SEED) as app:
        with protecting(db, repo, *QUICK) as protector:
            app.run(ops=20)
            oracle.point("before the reset")  # every transaction so far is durable
            generation = wal_salt(db)
            # SQLite resets the WAL when a writer starts with everything backfilled and no reader
            # on the log; a PASSIVE checkpoint of the application's own finishes the backfill.
            wait_until(lambda: app.run(checkpoint="PASSIVE") and app.run(spill=True)
                       and wal_salt(db) != generation, "a rolled-back transaction reset the WAL")
            oracle.point("after the reset")
            protector.stop()
        with protecting(db, repo, *QUICK) as protector:
            app.run(ops=20)
            oracle.point("later")
            protector.stop()
        app.close()
    assert protector.named("resumed") and not protector.named("new-chain")
    assert len(timeline(repo)["chains"]) == 1
    oracle.check_points()
    oracle.check_latest()


def wal_frames(db: Path) -> int:
    """Frames in the WAL file, of any generation (the file is never shortened here)."""
    return (wal(db).stat().st_size - 32) // (24 + 4096)


def wal_salt(db: Path) -> bytes:
    """Salt-1 of the WAL header: it changes at every reset. (The WAL file has no SQLite locks, so
    reading it here cannot disturb anyone.)"""
    with wal(db).open("rb") as header:
        return header.read(20)[16:]


def test_a_repository_that_cannot_be_written_for_a_while_loses_nothing(tmp_path: Path) -> None:
    """Segments that cannot be written stay in the protector and are written once the folder is
    back; meanwhile the WAL keeps every frame that is not durable (even against the application's
    own truncating checkpoint), and the status never says more is durable than is."""
    db, repo, oracle = oracle_store(tmp_path)
    with application(db, seed=SEED) as app, protecting(db, repo, *QUICK) as protector:
        app.run(ops=20)
        oracle.point("before the failure")
        segments = next((repo / "databases" / "mail" / "chains").iterdir()) / "segments"
        segments.rename(segments.with_name("away"))
        segments.write_bytes(b"")  # a file where the folder should be: every write fails
        app.run(ops=30)
        committed = int(time.time() * 1000)  # every one of the 30 before this instant
        protector.wait_for("sync-failed")
        generation = wal_salt(db)
        assert truncating_checkpoint(db)[0] == 1, "the WAL was truncated"
        assert wal_salt(db) == generation and wal(db).stat().st_size > 0
        status = wait_for_status(repo, written_after=committed)
        assert status.synced_through < committed, "the status claims what is not durable"
        segments.unlink()
        segments.with_name("away").rename(segments)
        oracle.point("after the failure")  # made once everything before it is durable
        status = wait_for_status(repo, written_after=int(time.time() * 1000))
        assert status.synced_through >= committed and status.error is None
        protector.stop()
        app.close()
    assert len(timeline(repo)["chains"]) == 1
    oracle.check_points()
    oracle.check_latest()


def test_a_captured_transaction_stays_in_the_wal_until_it_is_durable(tmp_path: Path) -> None:
    """Captured is not durable yet: until the segment is written, not even the application's own
    truncating checkpoint may take the transaction's frames out of the WAL, though every frame is
    backfilled and nothing else is written (the protector's next snapshot then holds no place in
    the WAL, and the one before must stay). Cycles are run by hand, so nothing is left to timing."""
    db, repo, _oracle = oracle_store(tmp_path)
    with closing(sqlite3.connect(db, isolation_level=None)) as app:
        app.execute("CREATE TABLE notes(body TEXT)")
        protector = Protector(db, Repository.open(repo), "mail",
                              ProtectOptions(sync_interval=3600, recovery_point_every=None))
        protector.start()
        try:
            app.execute("INSERT INTO notes VALUES ('captured, not yet durable')")
            protector.cycle()  # captures it, backfills it
            protector.cycle()  # nothing new
            generation = wal_salt(db)
            assert truncating_checkpoint(db, timeout=0)[0] == 1, "the WAL was truncated"
            assert wal_salt(db) == generation and wal(db).stat().st_size > 0
            assert protector.sync()
            protector.cycle()
            assert truncating_checkpoint(db, timeout=0) == (0, 0, 0)
        finally:
            protector.finish()


def truncating_checkpoint(db: Path, timeout: float = 0.5) -> tuple[int, int, int]:
    """What another application's `PRAGMA wal_checkpoint(TRUNCATE)` gives after waiting `timeout`
    seconds for readers: (busy, frames in the WAL, frames backfilled)."""
    with closing(sqlite3.connect(db, timeout=timeout)) as connection:
        busy, frames, done = connection.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    return busy, frames, done


def wait_for_status(repo: Path, *, written_after: int) -> ProtectorStatus:
    """The protector's status file, once it was written after `written_after` (ms)."""
    found: list[ProtectorStatus] = []

    def written() -> bool:
        status = Repository.open(repo).status("mail")
        found[:] = [status] if status and status.updated_at > written_after else []
        return bool(found)

    wait_until(written, f"a status written after {written_after}")
    return found[0]


def test_a_wal_reset_that_did_not_happen_is_asked_for_again_soon(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """SQLite starts the WAL over at the first write after a forced reset, unless another reader
    holds its read lock at that instant; it then appends to the same generation. The protector
    asks again once the WAL has grown an eighth of `reset_frames` past the reset, instead of
    letting it grow to twice `reset_frames`. An application reader that began just before the
    reset holds the lock here; cycles are run by hand, so nothing is left to timing."""
    monkeypatch.setattr(protector_module, "RESET_RETRY_SECONDS", 0.0)
    db, repo, oracle = oracle_store(tmp_path)
    reset_frames = 64
    events: list[str] = []
    protector = Protector(db, Repository.open(repo), "mail",
                          ProtectOptions(sync_interval=3600, recovery_point_every=None,
                                         reset_frames=reset_frames),
                          on_event=lambda event, _fields: events.append(event))
    protector.start()
    with closing(sqlite3.connect(db, isolation_level=None)) as app, \
            closing(read_only(db)) as reader:
        app.execute("CREATE TABLE notes(body BLOB)")

        def write_and_capture() -> None:
            app.execute("INSERT INTO notes VALUES (randomblob(3000))")
            protector.cycle()

        try:
            for _ in range(4 * reset_frames):
                app.execute("INSERT INTO notes VALUES (randomblob(3000))")
                if wal_frames(db) >= reset_frames and not reader.in_transaction:
                    reader.execute("BEGIN")  # on the newest snapshot: the reset can backfill all
                    reader.execute("SELECT count(*) FROM notes").fetchone()
                protector.cycle()
                if "wal-reset" in events:
                    break
            assert events.count("wal-reset") == 1 and reader.in_transaction
            generation, asked_at = wal_salt(db), protector.follower.frame
            while protector.follower.frame < asked_at + reset_frames // 4:
                write_and_capture()
            assert wal_salt(db) == generation, "the reader did not keep the WAL from a reset"
            reader.execute("COMMIT")
            while wal_salt(db) == generation:
                assert protector.follower.frame < asked_at + reset_frames // 2, \
                    "no new reset was asked for"
                write_and_capture()
        finally:
            protector.finish()
    assert events.count("wal-reset") == 2
    assert len(timeline(repo)["chains"]) == 1
    oracle.check_latest()
