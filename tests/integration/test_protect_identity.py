"""Which history a protector continues: never another database's, never a chain number or a
transaction number twice, and the same chain when the database provably did not change.

Real `cps protect` processes, real application processes, reference copies as the oracle."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import run_cps
from tests.integration.protect_helpers import (
    QUICK,
    ProtectorProcess,
    application,
    oracle_store,
    protecting,
    timeline,
    workload,
)

SEED = 20261207


def test_a_lost_chain_file_never_lets_a_chain_number_or_a_transaction_repeat(
        tmp_path: Path) -> None:
    db, repo, oracle = oracle_store(tmp_path)
    with application(db, seed=SEED) as app:
        with protecting(db, repo, *QUICK) as protector:
            app.run(ops=20)
            first = oracle.point("first")
            protector.stop()
        (repo / "databases" / "mail" / "chains" / "00000001" / "chain").unlink()
        # The old history still restores, without its chain file.
        oracle.check(first, "--latest")
        assert timeline(repo)["warnings"]
        with protecting(db, repo, *QUICK) as protector:
            [started] = protector.named("new-chain")
            assert (started["chain"], started["txn"]) == (2, first.txn + 1)
            assert "chain file is missing" in started["reason"]
            app.run(ops=20)
            second = oracle.point("second")
            protector.stop()
        app.close()
    assert [c["chain"] for c in timeline(repo)["chains"]] == [1, 2]
    oracle.check_points(by_txn=True)
    oracle.check(second, "--latest")


def test_another_database_under_the_same_id_is_refused(tmp_path: Path) -> None:
    db, repo, oracle = oracle_store(tmp_path)
    workload(db, ops=10, seed=1)
    with protecting(db, repo, *QUICK) as protector:
        kept = oracle.point("first")
        protector.stop()
    (tmp_path / "other").mkdir()
    other = tmp_path / "other" / "mail.db"
    run_cps("store", "create", other)

    refused = run_cps("protect", other, "--repo", repo, check=False)
    assert refused.returncode == 20
    message = refused.stderr.decode()
    assert str(db.resolve()) in message and str(other.resolve()) in message
    assert "--db-id" in message
    view = timeline(repo)
    assert len(view["chains"]) == 1 and view["protector"]["source_path"] == str(db.resolve())
    oracle.check(kept, "--latest")

    with protecting(other, repo, *QUICK, "--new-source") as protector:
        [started] = protector.named("new-chain")
        assert "new path" in started["reason"] and str(other.resolve()) in started["reason"]
        protector.stop()
    with protecting(other, repo, *QUICK) as protector:  # the new path is the known one now
        assert protector.named("resumed")
        protector.stop()
    with protecting(other, repo, *QUICK, "--db-id", "other") as protector:
        protector.stop()
    assert sorted(d["db_id"] for d in timeline(repo)) == ["mail", "other"]


def test_the_store_closing_after_the_protector_stopped_keeps_the_chain(tmp_path: Path) -> None:
    """The application's last connection checkpoints and deletes the WAL when it closes: with
    nothing committed meanwhile, the database is the last captured state, page for page, and
    protection goes on in the same chain."""
    db, repo, oracle = oracle_store(tmp_path)
    with application(db, seed=SEED) as app:
        with protecting(db, repo, *QUICK) as protector:
            app.run(ops=30)
            oracle.point("before the stop")
            protector.stop()
        app.close()
    assert not Path(f"{db}-wal").exists()
    with application(db, seed=SEED + 1) as app, protecting(db, repo, *QUICK) as protector:
        assert protector.named("unchanged") and not protector.named("new-chain")
        app.run(ops=30)
        oracle.point("after")
        protector.stop()
        app.close()
    [chain] = timeline(repo)["chains"]
    assert not chain["holes"]
    oracle.check_points(by_txn=True)
    oracle.check_latest()


def test_a_database_changed_while_unprotected_is_not_taken_for_unchanged(tmp_path: Path) -> None:
    db, repo, oracle = oracle_store(tmp_path)
    with protecting(db, repo, *QUICK) as protector:
        oracle.point("protected")
        protector.stop()
    workload(db, ops=5, seed=3)  # its last connection checkpoints and deletes the WAL
    assert not Path(f"{db}-wal").exists()
    protector = ProtectorProcess(db, repo, *QUICK)
    try:
        protector.wait_for("ready")
        assert protector.named("new-chain") and not protector.named("unchanged")
        protector.stop()
    finally:
        protector.kill()
    oracle.check_latest()
