"""Full backups taken while writers go on are exact: each one, page for page, equals the replay
of the log from the chain's first full backup to the same transaction. The process that synthesises
them can fail or be killed at any moment without losing a transaction, and never outlives its
protector."""

from __future__ import annotations

import hashlib
import os
import signal
import sqlite3
import struct
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

from cps.capture import ProtectOptions, Protector
from cps.capture.full_backup import FullSource, take_full
from cps.capture.sqlite_db import DatabaseFile
from cps.capture.wal_follower import WalFollower
from cps.repository import Chain, DatabaseInfo, FullRef, Repository
from cps.repository.catalog import Catalog
from cps.restore import Base, RestoreResult, Target, load_catalog, plan_restore, restore
from cps.store import MailDatabase
from cps.store.dump import dump_lines
from cps.store.workload import run_workload
from tests.integration.protect_helpers import DEADLINE_SECONDS, QUICK, ProtectorProcess, wait_until


def test_every_full_backup_equals_the_log_replayed(tmp_path: Path) -> None:
    db_path = tmp_path / "mail.db"
    MailDatabase.create(db_path).close()
    repo = Repository.init(tmp_path / "repo")
    events = Events()
    with protecting_in_thread(db_path, repo, events):
        run_workload(db_path, ops=1500, seed=7)
        events.wait_for("full-backup", count=3)  # the first, and two made while writes went on
    check_fulls_and_latest(repo, db_path, tmp_path, fulls_at_least=3)


def test_a_killed_full_backup_process_is_retried_and_loses_nothing(tmp_path: Path) -> None:
    """Encrypted, so that the child needs the key. The test holds prune's lock before anything is
    written (no full backup starts without new transactions), so that the child waits for it and
    is surely killed before it writes its full backup."""
    db_path = tmp_path / "mail.db"
    MailDatabase.create(db_path).close()
    repo = Repository.init(tmp_path / "repo", passphrase="correct horse")
    events = Events()
    with protecting_in_thread(db_path, repo, events):
        with repo.prune_lock():
            run_workload(db_path, ops=200, seed=7)
            started = events.wait_for("full-backup-started")
            os.kill(started["pid"], signal.SIGKILL)
            failed = events.wait_for("full-backup-failed")
        done_before = len(events.named("full-backup"))
        run_workload(db_path, ops=200, seed=8)
        retried = events.wait_for("full-backup", count=done_before + 1)
    assert failed["txn"] == started["txn"] and "killed by SIGKILL" in failed["error"]
    assert retried["txn"] >= started["txn"]
    check_fulls_and_latest(repo, db_path, tmp_path, fulls_at_least=2)


def test_the_full_backup_process_never_outlives_its_protector(tmp_path: Path) -> None:
    db_path = tmp_path / "mail.db"
    MailDatabase.create(db_path).close()
    repo = Repository.init(tmp_path / "repo")
    for end in ("stopped", "killed"):
        protector = ProtectorProcess(db_path, tmp_path / "repo", *QUICK, "--full-every", "100ms")
        try:
            protector.wait_for("ready")
            if end == "killed":
                protector.wait_for("full-backup")  # the one the stopped protector left unmade
            # No full backup starts without new transactions: the next one waits for this lock.
            with repo.prune_lock():
                started = len(protector.named("full-backup-started"))
                run_workload(db_path, ops=20, seed=len(end))
                child = protector.wait_for("full-backup-started", count=started + 1)["pid"]
                assert running(child)
                if end == "stopped":
                    protector.stop()
                else:
                    protector.kill()
                wait_until(lambda: not running(child), f"the full backup process ended ({end})")  # noqa: B023
        finally:
            protector.kill()


def test_a_wal_reset_under_a_running_full_backup_cannot_corrupt_it(tmp_path: Path) -> None:
    """The one case where the WAL may be reset under a full backup: its snapshot was taken when
    every frame was already back in the database file. The backup must then read the file."""
    db_path = tmp_path / "app.db"
    app = sqlite3.connect(db_path, isolation_level=None)
    app.execute("PRAGMA journal_mode=WAL")
    app.execute("PRAGMA wal_autocheckpoint=0")
    app.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, body BLOB)")
    for n in range(200):
        app.execute("INSERT INTO t(body) VALUES (?)", (bytes([n % 251]) * 3000,))
    want = app.execute("SELECT id, body FROM t ORDER BY id").fetchall()

    follower = WalFollower(Path(f"{db_path}-wal"))
    follower.start_fresh()
    assert follower.page_frames and follower.db_pages
    db_file = DatabaseFile(db_path)
    source = FullSource(db_file, follower.wal_path, 4096, follower.db_pages,
                        dict(follower.page_frames), follower.position)
    # every frame back in the database file, the WAL not reset yet
    assert app.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone() == (0, follower.frame,
                                                                        follower.frame)
    pin = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, isolation_level=None)
    pin.execute("BEGIN")
    pin.execute("SELECT count(*) FROM t").fetchone()  # a snapshot that needs no WAL frame
    for n in range(300):  # the next writer resets the WAL and overwrites its first frames
        app.execute("UPDATE t SET body = ? WHERE id = ?", (b"\xff" * 3000, n % 200 + 1))
    assert follower.wal_path.read_bytes()[16:20] != struct.pack(">I", follower.position.salt1)

    repo = repository_with_full(tmp_path, "app", db_path, source)
    pin.close()
    db_file.close()
    restored = restore(repo, plan_restore(load_catalog(repo, "app"), Target("txn", 1)),
                       tmp_path / "restored.db")
    got = sqlite3.connect(restored.output).execute("SELECT id, body FROM t ORDER BY id").fetchall()
    assert got == want


class Events:
    """The protector's events, as they come, for a test to wait on."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, dict[str, Any]]] = []
        self._changed = threading.Condition()

    def __call__(self, name: str, fields: dict[str, Any]) -> None:
        with self._changed:
            self.seen.append((name, fields))
            self._changed.notify_all()

    def named(self, name: str) -> list[dict[str, Any]]:
        with self._changed:
            return [fields for seen, fields in self.seen if seen == name]

    def wait_for(self, name: str, count: int = 1) -> dict[str, Any]:
        deadline = time.monotonic() + DEADLINE_SECONDS
        with self._changed:
            while len(found := self.named(name)) < count:
                remaining = deadline - time.monotonic()
                assert remaining > 0, f"event {name!r} #{count} never came: {self.seen[-10:]}"
                self._changed.wait(remaining)
        return found[count - 1]


@contextmanager
def protecting_in_thread(db_path: Path, repo: Repository, events: Callable[[str, dict[str, Any]], None],
                         db_id: str = "mail") -> Iterator[Protector]:
    """A protector in a thread of this process, with frequent full backups and WAL resets; stopped
    (everything captured made durable) at the end of the block."""
    protector = Protector(db_path, repo, db_id, ProtectOptions(
        full_every=0.2, sync_interval=0.1, reset_frames=400), on_event=events)
    stop = threading.Event()
    ready = threading.Event()
    thread = threading.Thread(target=protector.run, args=(stop,), kwargs={"on_ready": ready.set})
    thread.start()
    try:
        assert ready.wait(DEADLINE_SECONDS)
        yield protector
    finally:
        stop.set()
        thread.join(DEADLINE_SECONDS)
    assert not thread.is_alive()


def check_fulls_and_latest(repo: Repository, db_path: Path, folder: Path, *, fulls_at_least: int
                           ) -> None:
    """Every full backup equals the log replayed from the chain's first one to it, and the latest
    restore equals the live database."""
    catalog = load_catalog(repo, "mail")
    (chain,) = catalog.chains
    assert len(chain.fulls) >= fulls_at_least, "the test needs more full backups"
    for full in chain.fulls[1:]:
        from_full, replayed = restored_and_replayed(repo, catalog, full, folder)
        assert from_full.output.read_bytes() == replayed.output.read_bytes()
    latest = restore(repo, plan_restore(catalog, Target("latest")), folder / "latest.db")
    with MailDatabase.open(latest.output, readonly=True) as restored, \
            MailDatabase.open(db_path, readonly=True) as live:
        assert list(dump_lines(restored.connection)) == list(dump_lines(live.connection))


def restored_and_replayed(repo: Repository, catalog: Catalog, full: FullRef, folder: Path
                          ) -> tuple[RestoreResult, RestoreResult]:
    """The restore of `full`'s transaction from `full`, and from the log replayed from the first
    full backup of its chain (the only chain), each checked to be at that transaction."""
    (chain,) = catalog.chains
    from_full = restore(repo, plan_restore(catalog, Target("txn", full.txn)),
                        folder / f"full-{full.txn}.db")
    replay_plan = replace(plan_restore(catalog, Target("txn", full.txn)), bases=(
        Base(chain.fulls[0], tuple(s for s in chain.segments if s.first_txn <= full.txn)),))
    replayed = restore(repo, replay_plan, folder / f"replay-{full.txn}.db")
    assert from_full.txn == replayed.txn == full.txn
    return from_full, replayed


def repository_with_full(folder: Path, db_id: str, db_path: Path, source: FullSource
                         ) -> Repository:
    """A new repository, `folder`/repo, whose chain 1 of `db_id` starts with a full backup of
    `source` at transaction 1."""
    repo = Repository.init(folder / "repo")
    repo.add_database(DatabaseInfo(db_id, str(db_path), source.page_size, 0))
    repo.write_chain(db_id, Chain(1, 0, 1, "test"))
    take_full(repo, db_id, 1, 1, source, None)
    return repo


def running(pid: int) -> bool:
    """Whether process `pid` still runs (a zombie no longer does)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_the_log_starts_a_full_backup_by_pages_changed_not_by_their_rewrites(tmp_path: Path
                                                                             ) -> None:
    """One row rewritten a thousand times is a few pages for a restore to replay, however much log
    it makes; as many new rows as the threshold's pages start a full backup."""
    db_path = tmp_path / "plain.db"
    with sqlite3.connect(db_path) as app:
        app.execute("PRAGMA journal_mode=WAL")
        app.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, body BLOB)")
        app.execute("INSERT INTO t VALUES (1, zeroblob(100))")
    repo = Repository.init(tmp_path / "repo")
    options = ProtectOptions(recovery_point_every=None, full_after_changes_min=64 * 4096,
                             full_after_changes_share=0.0, full_after_changes_interval=0.0)
    protector = Protector(db_path, repo, "plain", options)
    protector.start()
    try:
        with sqlite3.connect(db_path, isolation_level=None) as app:
            for n in range(1000):
                app.execute("UPDATE t SET body = ? WHERE id = 1", (n.to_bytes(100, "big"),))
            protector.cycle()
            assert protector.last_txn >= 1000
            assert protector.fulls.process is None, "a few pages rewritten started a full backup"
            app.executemany("INSERT INTO t VALUES (?, zeroblob(3000))",
                            [(n,) for n in range(2, 2 + 100)])
            protector.cycle()
            assert protector.fulls.process is not None, "100 new pages started no full backup"
    finally:
        protector.finish()


# SQLite never writes the page that holds the bytes its file locks use, at 1 GiB: a database past
# it has a hole there (read as zeros) and the WAL no frame of it. 64 KiB pages keep the count low.
BIG_PAGE = 65536
BIG_ROW = 540_000_000  # two pass 1 GiB


def grow_past_1_gib(app: sqlite3.Connection) -> None:
    for row in (2, 3):
        app.execute("INSERT INTO t VALUES (?, zeroblob(?))", (row, BIG_ROW))
    app.execute("INSERT INTO t VALUES (4, ?)", (b"after the lock page" * 100,))


def content(path: Path) -> list[tuple[int, int, str]]:
    """Each row's id, length and digest, once SQLite has found the whole file sound."""
    with closing(sqlite3.connect(path)) as db:
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        return [(row_id, len(body), hashlib.sha256(body).hexdigest())
                for row_id, body in db.execute("SELECT id, body FROM t ORDER BY id")]


def big_page_database(path: Path) -> sqlite3.Connection:
    app = sqlite3.connect(path, isolation_level=None)
    app.execute(f"PRAGMA page_size={BIG_PAGE}")
    app.execute("PRAGMA journal_mode=WAL")
    app.execute("PRAGMA wal_autocheckpoint=0")
    app.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, body BLOB)")
    app.execute("INSERT INTO t VALUES (1, CAST('before' AS BLOB))")
    return app


def test_a_full_backup_of_a_database_grown_past_1_gib_in_the_wal_reads_the_lock_page_as_zeros(
        tmp_path: Path) -> None:
    """Before any checkpoint, the database file ends before 1 GiB and the WAL holds every page
    after the lock page but not the lock page itself."""
    db_path = tmp_path / "big.db"
    app = big_page_database(db_path)
    grow_past_1_gib(app)
    assert db_path.stat().st_size < 1 << 30 < Path(f"{db_path}-wal").stat().st_size
    follower = WalFollower(Path(f"{db_path}-wal"))
    follower.start_fresh()
    db_file = DatabaseFile(db_path)
    source = FullSource(db_file, follower.wal_path, BIG_PAGE, follower.db_pages,
                        dict(follower.page_frames), follower.position)
    repo = repository_with_full(tmp_path, "big", db_path, source)
    db_file.close()
    app.close()
    restored = restore(repo, plan_restore(load_catalog(repo, "big"), Target("txn", 1)),
                       tmp_path / "restored.db")
    assert restored.pages * BIG_PAGE > 1 << 30
    assert content(restored.output) == content(db_path)


def test_a_full_backup_made_from_a_log_that_grew_past_1_gib_is_exact(tmp_path: Path) -> None:
    """The first full backup is of a small database; the log then takes it past 1 GiB, and the
    full backup made from that log must hold the lock page too."""
    db_path = tmp_path / "big.db"
    big_page_database(db_path).close()
    repo = Repository.init(tmp_path / "repo")
    events = Events()
    with protecting_in_thread(db_path, repo, events, db_id="big"):
        events.wait_for("full-backup")
        with closing(sqlite3.connect(db_path, isolation_level=None)) as app:
            grow_past_1_gib(app)
        grown = events.wait_for("full-backup", count=2)
        assert "error" not in grown and not events.named("full-backup-failed")
    catalog = load_catalog(repo, "big")
    (chain,) = catalog.chains
    first, synthesised = chain.fulls[0], chain.fulls[-1]
    assert synthesised.txn > first.txn
    from_full, replayed = restored_and_replayed(repo, catalog, synthesised, tmp_path)
    assert from_full.pages * BIG_PAGE > 1 << 30
    assert content(from_full.output) == content(replayed.output) == content(db_path)
