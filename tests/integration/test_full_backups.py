"""Full backups taken while writers go on are exact: each one, page for page, equals the replay
of the log from the chain's first full backup to the same transaction."""

from __future__ import annotations

import sqlite3
import struct
import threading
from dataclasses import replace
from pathlib import Path

from cps.capture import ProtectOptions, Protector
from cps.capture.full_backup import FullSource, take_full
from cps.capture.sqlite_db import DatabaseFile
from cps.capture.wal_follower import WalFollower
from cps.repository import Chain, DatabaseInfo, Repository
from cps.restore import Target, load_catalog, plan_restore, restore
from cps.store import MailDatabase
from cps.store.dump import dump_lines
from cps.store.workload import run_workload


def test_every_full_backup_equals_the_log_replayed(tmp_path: Path) -> None:
    db_path = tmp_path / "mail.db"
    MailDatabase.create(db_path).close()
    repo = Repository.init(tmp_path / "repo")
    protector = Protector(db_path, repo, "mail", ProtectOptions(
        full_every=0.2, sync_interval=0.1, reset_frames=400))
    stop = threading.Event()
    ready = threading.Event()
    thread = threading.Thread(target=protector.run, args=(stop,), kwargs={"on_ready": ready.set})
    thread.start()
    assert ready.wait(60)
    run_workload(db_path, ops=1500, seed=7)
    stop.set()
    thread.join(60)

    catalog = load_catalog(repo, "mail")
    (chain,) = catalog.chains
    assert len(chain.fulls) >= 3, "the test needs several full backups"
    first = chain.fulls[0]
    for full in chain.fulls[1:]:
        from_full = restore(repo, plan_restore(catalog, Target("txn", full.txn)),
                            tmp_path / f"full-{full.txn}.db")
        assert from_full.txn == full.txn
        replay_plan = replace(
            plan_restore(catalog, Target("txn", full.txn)), full=first,
            segments=tuple(s for s in chain.segments if s.first_txn <= full.txn))
        replayed = restore(repo, replay_plan, tmp_path / f"replay-{full.txn}.db")
        assert replayed.txn == full.txn
        assert from_full.output.read_bytes() == replayed.output.read_bytes()

    latest = restore(repo, plan_restore(catalog, Target("latest")), tmp_path / "latest.db")
    with MailDatabase.open(latest.output, readonly=True) as restored, \
            MailDatabase.open(db_path, readonly=True) as live:
        assert list(dump_lines(restored.connection)) == list(dump_lines(live.connection))


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

    repo = Repository.init(tmp_path / "repo")
    repo.add_database(DatabaseInfo("app", str(db_path), 4096, 0))
    repo.write_chain("app", Chain(1, 0, 1, "test"))
    take_full(repo, "app", 1, 1, source, None)
    pin.close()
    db_file.close()
    restored = restore(repo, plan_restore(load_catalog(repo, "app"), Target("txn", 1)),
                       tmp_path / "restored.db")
    got = sqlite3.connect(restored.output).execute("SELECT id, body FROM t ORDER BY id").fetchall()
    assert got == want
