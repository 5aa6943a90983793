"""A repository whose disk fills up while `cps protect` runs: the protector stays up, says so,
keeps the WAL pinned and resumes the same chain with no gap when space returns; past its WAL
limit it lets the WAL go and starts a new chain, saying why, having lost nothing it captured.

The repository lives on a real tmpfs of a few MiB, filled by a real file; the tests are skipped,
saying why, where this system does not allow mounting one."""

from __future__ import annotations

from pathlib import Path

from tests.integration.protect_helpers import (
    QUICK,
    Oracle,
    ProtectorProcess,
    application,
    check_released_then_new_chain,
    new_store,
    protecting,
    stop_in_a_new_chain,
    timeline,
    wait_until,
)
from tests.mounts import fill, small_disk

SEED = 20261208


def wal_salt(wal: Path) -> bytes:
    """The WAL header's salt-1: it changes each time SQLite starts the WAL over."""
    with wal.open("rb") as handle:
        return handle.read(20)[16:20]


def test_a_full_repository_disk_pauses_capture_and_the_chain_goes_on(tmp_path: Path) -> None:
    db = tmp_path / "mail.db"
    with small_disk(tmp_path / "disk", "24m") as disk:
        repo = disk / "repo"
        new_store(db, repo)
        oracle = Oracle(db, repo, tmp_path)
        with application(db, seed=SEED) as app, protecting(db, repo, *QUICK) as protector:
            app.run(ops=20)
            before = oracle.point("before the disk filled")
            filler = fill(disk)
            app.run(ops=40)  # committed while nothing can be written to the repository
            failed = protector.wait_for("sync-failed")
            assert "space" in str(failed["error"]).lower()
            assert protector.process.poll() is None, "the protector died on a full disk"
            app.run(ops=10)
            filler.unlink()
            protector.wait_for("sync-recovered")
            after = oracle.point("after the disk was freed")
            protector.stop()
            app.close()
        assert len(protector.named("new-chain")) == 1  # only the first one
        [chain] = timeline(repo)["chains"]
        assert not chain["holes"]
        assert after.txn > before.txn
        oracle.check_points(by_txn=True)
        oracle.check_latest()


def test_past_its_wal_limit_the_protector_lets_the_wal_go_and_starts_a_new_chain(
        tmp_path: Path) -> None:
    db = tmp_path / "mail.db"
    wal = Path(f"{db}-wal")
    with small_disk(tmp_path / "disk", "24m") as disk:
        repo = disk / "repo"
        new_store(db, repo)
        oracle = Oracle(db, repo, tmp_path)
        with application(db, seed=SEED) as app, \
                protecting(db, repo, *QUICK, "--wal-limit", "2MiB") as protector:
            app.run(ops=20)
            before = oracle.point("before the disk filled")
            filler = fill(disk)

            def released() -> bool:
                app.run(ops=10)
                return bool(protector.named("wal-released"))

            wait_until(released, "the WAL passed its limit and was let go")
            assert protector.process.poll() is None
            generation = wal_salt(wal)
            wait_until(lambda: app.run(ops=5) and wal_salt(wal) != generation,
                       "the WAL starts over once it is let go")
            filler.unlink()
            after = stop_in_a_new_chain(protector, app, oracle)
        check_released_then_new_chain(repo, before, after)
        oracle.check_points(by_txn=True)
        oracle.check_latest()


def test_a_chain_that_cannot_be_started_on_a_full_disk_starts_when_it_can(tmp_path: Path) -> None:
    """A new chain is needed (the application truncated the WAL while nothing protected it) but
    its chain file cannot be written: the protector stays up, says so, and starts it when it can,
    under the next chain number."""
    db = tmp_path / "mail.db"
    with small_disk(tmp_path / "disk", "16m") as disk:
        repo = disk / "repo"
        new_store(db, repo)
        oracle = Oracle(db, repo, tmp_path)
        with application(db, seed=SEED) as app:
            with protecting(db, repo, *QUICK) as protector:
                app.run(ops=10)
                before = oracle.point("before")
                protector.stop()
            app.run(ops=5)
            app.run(checkpoint="TRUNCATE")
            app.run(ops=5)
            filler = fill(disk)
            protector = ProtectorProcess(db, repo, *QUICK)
            try:
                failed = protector.wait_for("new-chain-failed")
                assert "space" in str(failed["error"]).lower()
                assert protector.process.poll() is None and not protector.named("ready")
                filler.unlink()
                protector.wait_for("ready")  # at the next try, CHAIN_RETRY_SECONDS later
                assert [e["chain"] for e in protector.named("new-chain")] == [2]
                after = oracle.point("after")
                protector.stop()
            finally:
                protector.kill()
            app.close()
        assert after.txn > before.txn
        oracle.check_points(by_txn=True)
        oracle.check_latest()
