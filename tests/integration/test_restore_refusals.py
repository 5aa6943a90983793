"""A restore is the database as it was at its target, or it refuses: after prune, with a segment
missing in the middle or at the end (protector running or stopped), with damaged advisory files or
a damaged full backup, and at times after the last transaction. The timeline tells what is
restorable, what prune removed, what is missing, and whether a protector runs.

Every repository here is made by a real `cps protect` process over a mail database that a real
application process or `cps store workload` writes; every restore that succeeds is compared with
a reference copy of the live database taken at the same state (the oracle of protect_helpers)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from cps.repository import Repository
from cps.repository.catalog import COMMIT_MARGIN_MS
from tests.conftest import run_cps
from tests.integration.protect_helpers import (
    QUICK,
    Oracle,
    ProtectorProcess,
    Reference,
    application,
    at_argument,
    dump,
    oracle_store,
    protecting,
    restore,
    restore_refused,
    timeline,
    wait_until,
)

SEED = 20261206


def segments(repo: Path) -> list[Path]:
    return sorted(repo.glob("databases/mail/chains/*/segments/*.seg"))


def txns_of(segment: Path) -> tuple[int, int]:
    return int(segment.name[:16], 16), int(segment.name[17:33], 16)


def prune(repo: Path, *args: str) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(run_cps("prune", repo, "--json", *args).stdout)
    return result


def two_points(folder: Path, first: str, second: str
               ) -> tuple[Path, Oracle, Reference, Reference]:
    """A protected history: 20 operations, a recovery point, 20 more, another, a clean stop.
    The repository, the oracle and the two points' references."""
    db, repo, oracle = oracle_store(folder)
    with application(db, seed=SEED) as app, protecting(db, repo, *QUICK) as protector:
        app.run(ops=20)
        one = oracle.point(first)
        app.run(ops=20)
        two = oracle.point(second)
        protector.stop()
        app.close()
    return repo, oracle, one, two


def full_backup_after(protector: ProtectorProcess, txn: int) -> None:
    """Wait for a full backup of a transaction after `txn` (the workload must keep writing)."""
    protector.wait_for_line(lambda lines: next(
        (line for line in lines if line["event"] == "full-backup" and line["txn"] > txn), None),
        f"a full backup after transaction {txn}")


def flip_a_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x40
    path.write_bytes(bytes(data))


def test_after_prune_a_time_it_removed_is_refused_not_moved_later(tmp_path: Path) -> None:
    db, repo, oracle = oracle_store(tmp_path)
    with application(db, seed=SEED) as app, \
            protecting(db, repo, *QUICK, "--full-every", "1s") as protector:
        app.run(ops=30)
        early = oracle.point("early")
        early_time = int(time.time() * 1000)
        app.run(ops=30)
        full_backup_after(protector, early.txn)
        app.run(ops=20)
        late = oracle.point("late")
        protector.stop()
        app.close()
    chain_start = timeline(repo)["chains"][0]["started_at"]

    report = prune(repo, "--keep-within", "0s", "--keep-daily", "0", "--keep-weekly", "0")
    # Kept: the latest full backup and everything after it, so the late point, at the latest
    # transaction; the early one goes with the log before that full backup.
    assert report["deleted_points"] == 1 and report["deleted_segments"] >= 1
    assert report["kept_points"] == 1 and report["kept_fulls"] == 1

    [chain] = timeline(repo)["chains"]
    pruned = [h for h in chain["holes"] if h["kind"] == "pruned"]
    assert pruned and pruned[0]["first_txn"] == 1 and pruned[0]["last_txn"] >= early.txn
    assert chain["spans"][0]["first_txn"] > early.txn
    for target in (["--at", at_argument(early_time)], ["--at", chain_start],
                   ["--txn", str(early.txn)]):
        refused = restore_refused(repo, tmp_path / "refused.db", *target)
        assert refused.returncode == 31, target
        assert "removed by prune" in refused.stderr.decode()
    assert oracle.check(late, "--latest")["txn"] == late.txn
    text = run_cps("timeline", repo).stdout.decode()
    assert "REMOVED BY PRUNE" in text and "None" not in text


def test_a_segment_missing_in_the_middle_refuses_later_times_whether_or_not_it_runs(
        tmp_path: Path) -> None:
    db, repo, oracle = oracle_store(tmp_path)
    with application(db, seed=SEED) as app, protecting(db, repo, *QUICK) as protector:
        for step in range(6):
            app.run(ops=10)
            oracle.point(f"p{step}")
        middle = segments(repo)[len(segments(repo)) // 2]
        first, _last = txns_of(middle)
        middle.unlink()
        # While the protector runs, its status covers "now": the hole must still refuse it.
        refused = restore_refused(repo, tmp_path / "refused.db", "--at", "now")
        assert refused.returncode == 32, refused.stderr.decode()
        assert f"transactions {first} to " in refused.stderr.decode()
        best = restore(repo, tmp_path / "best.db", "--at", "now", "--best-effort")
        assert best["txn"] == first - 1 and not best["exact"] and best["damaged"]
        protector.stop()
        app.close()
    for target in (["--at", "now"], ["--latest"], ["--recovery-point", "p5"]):
        assert restore_refused(repo, tmp_path / "refused.db", *target).returncode == 32, target
    exact = restore(repo, tmp_path / "exact.db", "--txn", str(first - 1))
    assert dump(tmp_path / "exact.db") == dump(tmp_path / "best.db") and exact["exact"]
    [chain] = timeline(repo)["chains"]
    assert [(h["first_txn"], h["kind"]) for h in chain["holes"]] == [(first, "missing")]


def test_a_missing_last_segment_is_refused_not_restored_older(tmp_path: Path) -> None:
    repo, oracle, before, end = two_points(tmp_path, "before", "end")
    last = segments(repo)[-1]
    first, last_txn = txns_of(last)
    assert last_txn == end.txn and first > before.txn
    last.unlink()
    (repo / "databases" / "mail" / "status").unlink()  # the point alone shows the chain's end

    [chain] = timeline(repo)["chains"]
    assert chain["last_txn"] == end.txn
    assert [(h["first_txn"], h["last_txn"]) for h in chain["holes"]] == [(first, end.txn)]
    assert "MISSING" in run_cps("timeline", repo).stdout.decode()
    refused = restore_refused(repo, tmp_path / "refused.db", "--latest")
    assert refused.returncode == 32
    assert f"the latest captured transaction is {end.txn}" in refused.stderr.decode()
    best = restore(repo, tmp_path / "best.db", "--latest", "--best-effort")
    assert best["txn"] == first - 1 and best["damaged"]
    oracle.check(before, "--recovery-point", "before")


def test_damaged_advisory_files_are_left_out_with_a_warning(tmp_path: Path) -> None:
    repo, oracle, point, end = two_points(tmp_path, "before upgrade", "end")
    flip_a_byte(repo / "databases" / "mail" / "status")
    [point_file] = [p for p in (repo / "databases" / "mail" / "points").iterdir()
                    if int(p.name[:16], 16) == point.txn]
    flip_a_byte(point_file)

    view = timeline(repo)
    assert any("status" in w for w in view["warnings"])
    assert [p["txn"] for p in view["unreadable_recovery_points"]] == [point.txn]
    assert oracle.check(end, "--latest")["txn"] == end.txn
    oracle.check(point, "--txn", str(point.txn))
    oracle.check(end, "--recovery-point", "end")
    refused = restore_refused(repo, tmp_path / "refused.db", "--recovery-point", "before upgrade")
    assert refused.returncode == 31 and "cannot be read" in refused.stderr.decode()


def test_a_damaged_last_full_backup_is_passed_over_for_an_earlier_one(tmp_path: Path) -> None:
    db, repo, oracle = oracle_store(tmp_path)
    with application(db, seed=SEED) as app, \
            protecting(db, repo, *QUICK, "--full-every", "1s") as protector:
        app.run(ops=20)
        protector.wait_for("full-backup", count=2)
        app.run(ops=20)
        end = oracle.point("end")
        protector.stop()
        app.close()
    fulls = sorted(repo.glob("databases/mail/chains/*/fulls/*.full"))
    assert len(fulls) >= 2
    flip_a_byte(fulls[-1])
    for best_effort in ([], ["--best-effort"]):
        result = oracle.check(end, "--latest", *best_effort)
        assert result["txn"] == end.txn and result["exact"]
        assert len(result["passed_over"]) == 1 and fulls[-1].name in result["passed_over"][0]


def test_a_time_after_the_last_transaction_is_covered_while_watched(tmp_path: Path) -> None:
    db, repo, oracle = oracle_store(tmp_path)
    with application(db, seed=SEED) as app, protecting(db, repo, *QUICK) as protector:
        app.run(ops=20)
        latest = oracle.copy("latest")
        oracle.check(latest, "--at", "now")  # waits for the protector's status to cover it
        protector.stop()
        app.close()
    # Up to the clean stop's last look at the WAL (less the time a commit may be in flight), the
    # state is the last transaction's; after it nothing is proven.
    status = Repository.open(repo).status("mail")
    assert status is not None and status.state == "stopped"
    proven = status.synced_through - COMMIT_MARGIN_MS
    [last] = segments(repo)[-1:]
    assert proven > int(last.name.split("-")[3].split(".")[0], 16)
    oracle.check(latest, "--at", at_argument(proven - 1))
    refused = restore_refused(repo, tmp_path / "refused.db", "--at", at_argument(proven))
    assert refused.returncode == 31
    refused = restore_refused(repo, tmp_path / "refused.db", "--at", "now")
    assert refused.returncode == 31
    message = refused.stderr.decode()
    assert "after the latest time the repository proves" in message
    assert "No protector is running" in message


def test_refusals_name_every_chains_range(tmp_path: Path) -> None:
    db, repo, oracle = oracle_store(tmp_path)
    with application(db, seed=SEED) as app:
        for run in range(2):
            with protecting(db, repo, *QUICK) as protector:
                app.run(ops=10)
                oracle.point(f"run {run}")
                protector.stop()
            app.run(checkpoint="TRUNCATE")  # unprotected, the WAL starts over: a new chain
            app.run(ops=3)
        app.close()
    chains = timeline(repo)["chains"]
    assert len(chains) == 2
    message = restore_refused(repo, tmp_path / "x.db", "--txn", "100000").stderr.decode()
    for chain in chains:
        [span] = chain["spans"]
        assert f"transactions {span['first_txn']} to {span['last_txn']}" in message


def test_the_timeline_tells_a_killed_protector_from_a_running_one(tmp_path: Path) -> None:
    db, repo, _oracle = oracle_store(tmp_path)
    with protecting(db, repo, *QUICK) as protector:
        def reported(state: str) -> bool:
            return bool(timeline(repo)["protector"]["condition"] == state)

        wait_until(lambda: reported("protecting"), "the timeline says protecting")
        assert "protecting" in run_cps("timeline", repo).stdout.decode()
        protector.kill()
    view = timeline(repo)["protector"]
    assert (view["running"], view["condition"], view["state"]) == (False, "not running",
                                                                   "protecting")
    assert "did not stop cleanly" in run_cps("timeline", repo).stdout.decode()
    with protecting(db, repo, *QUICK) as protector:
        protector.stop()
    assert timeline(repo)["protector"]["condition"] == "stopped"


def test_kept_points_survive_prune_and_prune_counts_what_a_person_counts(tmp_path: Path) -> None:
    db, repo, oracle = oracle_store(tmp_path)
    with application(db, seed=SEED) as app, \
            protecting(db, repo, *QUICK, "--full-every", "1s") as protector:
        app.run(ops=15)
        kept = oracle.point("before upgrade")
        run_cps("recovery-point", "keep", repo, "before upgrade")
        app.run(ops=15)
        ordinary = oracle.point("ordinary")
        app.run(ops=10)
        full_backup_after(protector, ordinary.txn)
        end = oracle.point("end")
        protector.stop()
        app.close()
    report = prune(repo, "--keep-within", "0s", "--keep-daily", "0", "--keep-weekly", "0")
    # Kept: the point marked so, and the end point, at the latest transaction.
    assert (report["kept_points"], report["deleted_points"]) == (2, 1)
    text = run_cps("prune", repo, "--keep-within", "0s", "--keep-daily", "0", "--keep-weekly",
                   "0", "--dry-run").stdout.decode()
    assert "would delete 0 full backups, 0 segments, 0 recovery points, 0 chains, 0 packs" in text
    assert "kept 2 full backups, 2 recovery points and every point in time since" in text
    oracle.check(kept, "--recovery-point", "before upgrade")
    oracle.check(end, "--latest")
    assert [p["keep"] for p in timeline(repo)["recovery_points"]] == [True, False]

    run_cps("recovery-point", "keep", repo, "before upgrade", "--off")
    assert prune(repo, "--keep-within", "0s", "--keep-daily", "0",
                 "--keep-weekly", "0")["deleted_points"] == 1
    refused = restore_refused(repo, tmp_path / "gone.db", "--recovery-point", "before upgrade")
    assert refused.returncode == 31


def test_an_empty_repository_has_an_empty_timeline(tmp_path: Path) -> None:
    Repository.init(tmp_path / "repo")
    listed = run_cps("timeline", tmp_path / "repo")
    assert listed.stdout.decode().strip() == "no database is protected into this repository yet"
    assert json.loads(run_cps("timeline", tmp_path / "repo", "--json").stdout) == []


def test_a_database_with_nothing_restorable_says_so_in_words(tmp_path: Path) -> None:
    db, repo, _oracle = oracle_store(tmp_path)
    with protecting(db, repo, *QUICK) as protector:
        protector.stop()
    for full in repo.glob("databases/mail/chains/*/fulls/*.full"):
        full.unlink()
    text = run_cps("timeline", repo).stdout.decode()
    assert "nothing restorable" in text and "None" not in text
