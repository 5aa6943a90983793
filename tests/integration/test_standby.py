"""`cps standby`: a copy replayed from the repository, lagged, and promoted after the primary is lost.

Every check compares the copy with an independent oracle: a reference copy of the live database
taken at a recovery point (protect_helpers.Oracle), or a restore of the same transaction.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from cps.repository import Repository
from cps.repository.standby_record import APPLYING, PROMOTED, REPLAYING, read_record
from cps.restore.standby import replay
from cps.store import MailDatabase
from tests.conftest import CPS, run_cps
from tests.integration.intake_helpers import message, send_lmtp, serving
from tests.integration.protect_helpers import (
    QUICK,
    JsonLinesProcess,
    Oracle,
    Reference,
    assert_same,
    oracle_store,
    protecting,
    restore,
    start_workload,
    timeline,
    wait_until,
    workload,
)


def standby(*args: str | Path, check: bool = True) -> subprocess.CompletedProcess[bytes]:
    return run_cps("standby", *args, check=check)


def status(copy: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(standby("status", copy, "--json").stdout)
    return data


def events(result: subprocess.CompletedProcess[bytes]) -> list[dict[str, Any]]:
    return [json.loads(line) for line in result.stdout.decode().splitlines() if line.strip()]


def test_standby_follows_the_log_and_equals_every_recovery_point(tmp_path: Path) -> None:
    db, repo, oracle = oracle_store(tmp_path)
    copy = tmp_path / "standby" / "mail.db"
    copy.parent.mkdir()
    with protecting(db, repo, *QUICK) as protector:
        workload(db, ops=40, seed=1)
        first = oracle.point("p0")
        created = events(standby("create", repo, "--db", "mail", "--to", copy, "--once",
                                 "--json"))
        assert created[-1]["event"] == "seeded" and created[-1]["txn"] == first.txn
        assert_same(first, copy, "the seeded standby")
        for step in range(1, 4):
            workload(db, ops=30, seed=step + 1)
            reference = oracle.point(f"p{step}")
            done = events(standby("run", copy, "--once", "--json"))[-1]
            assert done["event"] == "replayed" and done["seeded"] is None
            assert done["txn"] == reference.txn and done["applied"] > 0
            assert_same(reference, copy, f"the standby after step {step}")
        protector.stop()
    record = read_record(copy)
    assert record.state == REPLAYING and record.seeds == 1 and record.problem == ""
    shown = status(copy)
    assert shown["health"] == "stopped" and shown["txn"] == record.txn
    assert shown["transactions_behind"] == 0


def test_a_new_chain_seeds_the_standby_again_and_says_why(tmp_path: Path) -> None:
    db, repo, oracle = oracle_store(tmp_path)
    copy = tmp_path / "standby.db"
    with protecting(db, repo, *QUICK) as protector:
        workload(db, ops=30, seed=1)
        oracle.point("p0")
        standby("create", repo, "--to", copy, "--once")
        protector.stop()
    workload(db, ops=10, seed=2)  # unprotected writes, checkpointed away: continuity is lost
    with protecting(db, repo, *QUICK) as protector:
        protector.wait_for("new-chain")
        reference = oracle.point("p1")
        done = events(standby("run", copy, "--once", "--json"))[-1]
        protector.stop()
    assert done["event"] == "seeded" and done["chain"] == 2
    assert done["seeded"].startswith("chain 2 started: ")
    assert_same(reference, copy, "the standby seeded from the new chain")
    assert read_record(copy).seeds == 2


def test_a_lagged_standby_never_takes_a_mass_delete_and_promotes_to_just_before_it(
        tmp_path: Path) -> None:
    db, repo, oracle = oracle_store(tmp_path)
    copy = tmp_path / "lagged.db"
    with protecting(db, repo, *QUICK) as protector:
        workload(db, ops=60, seed=3)
        before = oracle.point("before-delete")
        cutoff_ms = int(time.time() * 1000)  # every transaction so far committed by now
        _delete_every_message(db)
        after = oracle.point("after-delete")
        assert after.txn is not None and before.txn is not None and after.txn > before.txn
        protector.stop()
    standby("create", repo, "--to", copy, "--lag", "10m", "--once")
    assert status(copy)["health"] == "waiting"  # nothing is ten minutes old yet
    assert not copy.exists()
    # Ten minutes after the cutoff, as a running standby would see it then: everything committed
    # up to the cutoff is old enough, the delete (committed after it) is not.
    repository = Repository.open(repo)
    held = replay(repository, copy, cutoff_ms + 10 * 60_000).record
    assert held.txn == before.txn
    assert_same(before, copy, "the lagged standby ten minutes on")
    promoted = json.loads(standby("promote", copy, "--recovery-point", "before-delete",
                                  "--json").stdout)
    assert promoted["txn"] == before.txn and promoted["applied"] == 0
    assert promoted["restored_whole"] is None
    assert_same(before, copy, "the promoted standby")
    refused = standby("run", copy, "--once", check=False)
    assert refused.returncode == 33 and b"was promoted" in refused.stderr


def test_failover_under_load_promotes_resumes_delivery_and_protection(tmp_path: Path) -> None:
    db, repo, oracle = oracle_store(tmp_path)
    with MailDatabase.open(db) as database:
        database.create_mailbox("alice@example.com", "Alice")
    copy = tmp_path / "standby" / "mail.db"
    copy.parent.mkdir()
    log = tmp_path / "ops.jsonl"
    with protecting(db, repo, *QUICK) as protector:
        workload(db, ops=30, seed=4)
        standby("create", repo, "--to", copy, "--once")
        replayer = JsonLinesProcess([*CPS, "standby", "run", str(copy), "--interval", "100ms",
                                     "--json"], tmp_path / "replayer.stderr")
        writer = start_workload(db, ops=100_000, seed=5, rate=200, log=log)
        try:
            first = status(copy)["txn"]
            wait_until(lambda: status(copy)["txn"] > first + 20, "the standby to replay the load")
            assert status(copy)["health"] == "ok"
            second = standby("run", copy, check=False)  # one replayer per copy
            assert second.returncode == 13 and b"locked by another process" in second.stderr
        finally:
            writer.kill()  # the mail host dies: its database is destroyed
            writer.communicate()
        protector.kill()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)

    promoted = json.loads(standby("promote", copy, "--json").stdout)
    assert replayer.wait() == 0, replayer.stderr()
    latest = restore(repo, tmp_path / "latest.db", "--latest")
    assert promoted["txn"] == latest["txn"]  # unlagged: every captured transaction is there
    assert_same(Reference("latest", tmp_path / "latest.db"), copy, "the promoted standby")
    assert read_record(copy).state == PROMOTED

    with serving(tmp_path, copy) as served, served.lmtp() as client:
        replies = send_lmtp(client, ["alice@example.com"], message("after failover"))
        assert [code for code, _ in replies] == [250]
    with protecting(copy, repo, *QUICK, "--db-id", "mail") as protector:
        started = protector.wait_for("new-chain")
        assert "a standby copy was promoted at transaction" in started["reason"]
        workload(copy, ops=20, seed=6)
        protector.stop()
    chains = timeline(repo)["chains"]
    assert "standby copy was promoted" in chains[-1]["reason"]
    oracle_after = Oracle(copy, repo, tmp_path)
    oracle_after.check_latest("after failover")


def test_promote_refuses_damaged_log_and_leaves_a_sound_standby(tmp_path: Path) -> None:
    db, repo, oracle = oracle_store(tmp_path)
    copy = tmp_path / "standby.db"
    with protecting(db, repo, *QUICK) as protector:
        workload(db, ops=20, seed=7)
        seeded = oracle.point("p0")
        standby("create", repo, "--to", copy, "--once")
        workload(db, ops=20, seed=8)
        oracle.point("p1")
        protector.stop()
    segments = sorted((repo / "databases" / "mail").rglob("*.seg"))
    _flip_a_byte(segments[-1])
    standby("run", copy, "--once")
    shown = status(copy)
    assert shown["health"] == "failing" and "cannot be read" in shown["problem"]
    refused = standby("promote", copy, check=False)
    assert refused.returncode == 32, refused.stderr
    assert b"cannot be played forward" in refused.stderr
    record = read_record(copy)
    assert record.state == REPLAYING and record.txn >= seeded.txn  # type: ignore[operator]
    if record.txn == seeded.txn:
        assert_same(seeded, copy, "the standby after the refused promotion")


def test_promote_to_a_point_behind_the_copy_restores_it_whole(tmp_path: Path) -> None:
    db, repo, oracle = oracle_store(tmp_path)
    copy = tmp_path / "standby.db"
    with protecting(db, repo, *QUICK) as protector:
        workload(db, ops=30, seed=9)
        early = oracle.point("early")
        workload(db, ops=30, seed=10)
        oracle.point("late")
        standby("create", repo, "--to", copy, "--once")
        protector.stop()
    promoted = json.loads(standby("promote", copy, "--txn", str(early.txn), "--json").stdout)
    assert promoted["txn"] == early.txn
    assert "before transaction" in promoted["restored_whole"]
    assert_same(early, copy, "the standby promoted back to an earlier point")


def test_a_replayer_killed_at_any_moment_resumes_to_the_exact_state(tmp_path: Path) -> None:
    db, repo, oracle = oracle_store(tmp_path)
    copy = tmp_path / "standby.db"
    with protecting(db, repo, *QUICK) as protector:
        workload(db, ops=10, seed=11)
        standby("create", repo, "--to", copy, "--once")
        kills = 0
        for step in range(4):
            workload(db, ops=150, seed=20 + step)
            replayer = subprocess.Popen([*CPS, "standby", "run", str(copy), "--once"],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            wait_until(lambda process=replayer: process.poll() is not None
                       or _state(copy) == APPLYING, "the replayer to write pages or finish")
            if replayer.poll() is None:
                os.kill(replayer.pid, signal.SIGKILL)
                kills += 1
            replayer.wait()
        final = oracle.point("final")
        protector.stop()
    done = events(standby("run", copy, "--once", "--json"))[-1]
    assert done["txn"] == final.txn and done["seeded"] is None
    assert_same(final, copy, f"the standby after {kills} kills")


def test_status_and_errors_are_plain(tmp_path: Path) -> None:
    missing = standby("status", tmp_path / "nothing.db", check=False)
    assert missing.returncode == 33 and b"is not a standby copy" in missing.stderr
    db, repo, _oracle = oracle_store(tmp_path)
    with protecting(db, repo, *QUICK) as protector:
        workload(db, ops=5, seed=12)
        protector.stop()
    copy = tmp_path / "standby.db"
    standby("create", repo, "--to", copy, "--once")
    again = standby("create", repo, "--to", copy, "--once", check=False)
    assert again.returncode != 0 and b"already exists" in again.stderr
    (tmp_path / "copy.standby").write_bytes(b"not a record")
    damaged = standby("status", tmp_path / "copy", check=False)
    assert damaged.returncode == 14 and b"copy.standby" in damaged.stderr
    text = standby("status", copy).stdout.decode()
    assert "health:       stopped" in text and "replay not running" in text


def _state(copy: Path) -> str:
    return read_record(copy).state  # replaced atomically: never read half-written


def _delete_every_message(db: Path) -> None:
    """The mass delete: every message of every mailbox removed for good, in one transaction."""
    with MailDatabase.open(db) as database:
        with database.read() as connection:
            ids = [row[0] for row in connection.execute("SELECT id FROM messages")]
        assert ids
        database.expunge(ids)


def _flip_a_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x40
    path.write_bytes(bytes(data))
