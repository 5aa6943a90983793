"""Full backups taken while writers go on are exact: each one, page for page, equals the replay
of the log from the chain's first full backup to the same transaction."""

from __future__ import annotations

import threading
from dataclasses import replace
from pathlib import Path

from cps.capture import ProtectOptions, Protector
from cps.repository import Repository
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
