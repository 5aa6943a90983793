"""The commit clock read from the pages of real SQLite transactions, as capture reads them from
the WAL: the store's own clock, another program's transaction that sets none, a look-alike row,
a value that cannot be a time in microseconds, and a clock page moved by VACUUM."""

from __future__ import annotations

import sqlite3
import time
from contextlib import closing
from pathlib import Path

from cps.capture.commit_clock import CommitClock
from cps.capture.wal_follower import CommittedTxn, WalFollower
from cps.store import MailDatabase

SEEN = 4_000_000_000_000  # "seen" far in the future: every real commit time is before it


def committed(db: Path, follower: WalFollower) -> list[CommittedTxn]:
    transactions, complete = follower.poll()
    assert complete
    return transactions


def clock_of(db: Path) -> int:
    with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as connection:
        return int(connection.execute("SELECT committed_at FROM cps_commit_clock").fetchone()[0])


def test_each_store_transaction_carries_its_own_commit_time(tmp_path: Path) -> None:
    db = tmp_path / "mail.db"
    with MailDatabase.create(db) as database:
        follower = WalFollower(Path(f"{db}-wal"))
        follower.start_fresh()
        clock = CommitClock()
        times = []
        for n in range(5):
            database.create_mailbox(f"user{n}@example.com")
            [txn] = committed(db, follower)
            times.append(clock.committed_at(txn.pages, SEEN))
            assert times[-1] == clock_of(db) // 1000
        assert times == sorted(times) and times[0] > 0


def test_a_transaction_that_sets_no_clock_has_no_commit_time(tmp_path: Path) -> None:
    db = tmp_path / "mail.db"
    MailDatabase.create(db).close()
    with closing(sqlite3.connect(db, isolation_level=None)) as other:
        other.execute("PRAGMA journal_mode=WAL")
        follower = WalFollower(Path(f"{db}-wal"))
        follower.start_fresh()
        other.execute("INSERT INTO meta VALUES ('written by another program', 'x')")
        [txn] = committed(db, follower)
        assert CommitClock().committed_at(txn.pages, SEEN) == 0


def test_a_look_alike_row_or_a_time_in_milliseconds_is_not_a_commit_time(tmp_path: Path) -> None:
    db = tmp_path / "other.db"
    with closing(sqlite3.connect(db, isolation_level=None)) as connection:
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("CREATE TABLE clocky (id INTEGER PRIMARY KEY, tag TEXT, at INTEGER)")
        connection.execute("CREATE TABLE cps_commit_clock (id INTEGER PRIMARY KEY, "
                           "tag TEXT, committed_at INTEGER)")
        connection.execute("INSERT INTO clocky VALUES (1, 'not-the-clock-tag', 7)")
        connection.execute("INSERT INTO cps_commit_clock VALUES (1, 'cps-commit-clock', 0)")
        follower = WalFollower(Path(f"{db}-wal"))
        follower.start_fresh()
        for value in (time.time_ns() // 1_000_000, 5):  # milliseconds; a small number
            connection.execute("UPDATE clocky SET at = ?", (time.time_ns() // 1000,))
            connection.execute("UPDATE cps_commit_clock SET committed_at = ?", (value,))
            transactions = committed(db, follower)
            assert [CommitClock().committed_at(t.pages, SEEN) for t in transactions] == [0, 0]


def test_the_clock_is_found_wherever_its_page_is(tmp_path: Path) -> None:
    """The page remembered no longer holds the clock (a VACUUM renumbers pages): every page of
    the transaction is looked at, and the clock found again."""
    db = tmp_path / "mail.db"
    with MailDatabase.create(db) as database:
        follower = WalFollower(Path(f"{db}-wal"))
        follower.start_fresh()
        clock = CommitClock()
        database.create_mailbox("alice@example.com")
        [txn] = committed(db, follower)
        assert clock.committed_at(txn.pages, SEEN) > 0
        found_on = clock.page
        clock.page = 10**6
        database.connection.execute("VACUUM")  # sets no clock: another program's transaction
        database.create_mailbox("bob@example.com")
        vacuum, mailbox = committed(db, follower)
        assert clock.committed_at(vacuum.pages, SEEN) == 0
        assert clock.committed_at(mailbox.pages, SEEN) == clock_of(db) // 1000
        assert clock.page is not None and found_on is not None
