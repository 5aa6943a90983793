"""Crashes: the protector, a prune and an application writer killed with SIGKILL at random
moments. Afterwards every recovery point the repository still lists restores to exactly its
reference, the latest restore is the live database (no committed transaction lost), and nothing a
killed writer had not committed ever appears.

The long randomized loops are marked slow; a short run of the protector crashes is not, so that
every CI run kills a protector three times: during its first full backup, while capturing, and
while capturing followed by a WAL reset before it comes back.
"""

from __future__ import annotations

import random
import signal
import subprocess
import time
from contextlib import closing
from email.message import EmailMessage
from pathlib import Path

import pytest

from cps.capture.sqlite_wal import WAL_HEADER_SIZE, parse_header, read_runs
from cps.store import MailDatabase
from tests.conftest import CPS, run_cps
from tests.integration.protect_helpers import (
    DEADLINE_SECONDS,
    QUICK,
    Application,
    Oracle,
    ProtectorProcess,
    application,
    log_lines,
    logged,
    new_store,
    protecting,
    read_only,
    restore_refused,
    timeline,
    wait_until,
)

SEED = 4242
FREQUENT_FULLS = (*QUICK, "--full-every", "300ms")


def test_protector_killed_during_a_full_and_while_capturing_loses_nothing(tmp_path: Path) -> None:
    db, repo, oracle = large_store(tmp_path, messages=8)
    log = tmp_path / "operations.jsonl"
    with application(db, seed=SEED, log=log) as app, \
            Crashes(db, repo, app, log, random.Random(SEED)) as crashes:
        crashes.kill_and_restart(FIRST_FULL)
        for round_number, moment in enumerate([CAPTURING, TRUNCATED_WHILE_DOWN]):
            crashes.under_workload(moment, ops=crashes.rng.randint(30, 80), rate=200)
            oracle.point(f"round {round_number}")
        crashes.stop()
        app.close()
    check_everything(oracle, repo)


@pytest.mark.slow
def test_protector_killed_at_random_moments_loses_nothing(tmp_path: Path) -> None:
    db, repo, oracle = large_store(tmp_path, messages=30)
    log = tmp_path / "operations.jsonl"
    with application(db, seed=SEED, log=log) as app, \
            Crashes(db, repo, app, log, random.Random(SEED + 1)) as crashes:
        crashes.kill_and_restart(FIRST_FULL)
        moments = [TRUNCATED_WHILE_DOWN] + [
            crashes.rng.choice([CAPTURING, SCHEDULED_FULL, TRUNCATED_WHILE_DOWN]) for _ in range(14)]
        for round_number, moment in enumerate(moments):
            crashes.under_workload(moment, ops=crashes.rng.randint(60, 200), rate=300)
            oracle.point(f"round {round_number}")
        crashes.stop()
        app.close()
    check_everything(oracle, repo)


@pytest.mark.slow
def test_prune_killed_at_random_moments_keeps_every_point_it_keeps(tmp_path: Path) -> None:
    db, repo, oracle = large_store(tmp_path, messages=20)
    rng = random.Random(SEED + 2)
    with application(db, seed=SEED) as app, \
            protecting(db, repo, *QUICK, "--full-every", "200ms") as protector:
        for round_number in range(6):
            app.run(ops=rng.randint(20, 60))
            protector.wait_for("full-backup", count=len(protector.named("full-backup")) + 1)
            oracle.point(f"round {round_number}")
        started = time.monotonic()
        run_cps(*prune_arguments(repo), "--dry-run")
        duration = time.monotonic() - started
        interrupted = 0
        for _attempt in range(8):
            interrupted += killed_prune(repo, rng.uniform(0.0, 1.2 * duration))
            check_listed_points(oracle, repo)
        run_cps(*prune_arguments(repo))
        kept = check_listed_points(oracle, repo, refused_too=True)
        protector.stop()
        app.close()
    assert interrupted, "every prune had finished before it was killed"
    assert 0 < len(kept) < len(oracle.references)
    oracle.check_latest()


def test_writer_killed_mid_transaction_never_appears_in_a_restore(tmp_path: Path) -> None:
    db, repo, oracle = large_store(tmp_path, messages=0)
    wal = Path(f"{db}-wal")
    with protecting(db, repo, *QUICK) as protector, application(db, seed=SEED) as app:
        app.run(ops=40)
        committed = oracle.point("committed")
        asked = app.send(hang=True)
        app.answer(asked)  # {"inside": true}: the transaction is open, its pages spilled
        assert uncommitted_frames(wal) > 100, "the open transaction wrote nothing to the WAL"
        app.kill()
        assert oracle.point("after the kill").txn == committed.txn
        protector.stop()
    oracle.check_points()
    latest = oracle.check_latest()
    with closing(read_only(latest)) as connection:
        subjects = [row[0] for row in connection.execute("SELECT subject FROM bodies")]
    assert subjects and "never committed" not in subjects


def uncommitted_frames(wal: Path) -> int:
    """How many valid frames follow the WAL's last commit frame: a transaction being written.
    (The WAL file carries no SQLite locks, so reading it here disturbs nobody.)"""
    with wal.open("rb") as handle:
        header = parse_header(handle.read(WAL_HEADER_SIZE))
        assert header is not None, "the WAL has no header"
        tail = 0
        for run in read_runs(handle, header, 0, header.checksum):
            tail = 0 if run.commit_size else tail + len(run.page_numbers)
    return tail


FIRST_FULL = "while the first full backup of its chain is written"
CAPTURING = "while capturing"
SCHEDULED_FULL = "in or around a scheduled full backup"
TRUNCATED_WHILE_DOWN = "while capturing, and the application truncates the WAL before the restart"


class Crashes:
    """A protector that the test kills and starts again while one application writes."""

    def __init__(self, db: Path, repo: Path, app: Application, log: Path,
                 rng: random.Random) -> None:
        self.db, self.repo, self.app, self.log, self.rng = db, repo, app, log, rng
        self.current = ProtectorProcess(db, repo, *FREQUENT_FULLS)

    def __enter__(self) -> Crashes:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.current.kill()

    def kill_and_restart(self, moment: str) -> None:
        self._wait_for(moment)
        self.current.kill()
        self._restart()

    def under_workload(self, moment: str, *, ops: int, rate: float) -> None:
        """Kill the protector at `moment` while the application runs `ops` operations, start it
        again, and return when both the application is done and the protector ready."""
        asked = self.app.send(ops=ops, rate=rate)
        self._wait_for(moment)
        self.current.kill()
        if moment == TRUNCATED_WHILE_DOWN:
            self.app.answer(asked)
            assert self.app.run(checkpoint="TRUNCATE")["busy"] == 0
        self._restart()
        self.app.answer(asked)

    def stop(self) -> None:
        self.current.stop()

    def _restart(self) -> None:
        self.current = ProtectorProcess(self.db, self.repo, *FREQUENT_FULLS)
        self.current.wait_for("ready")

    def _wait_for(self, moment: str) -> None:
        if moment == FIRST_FULL:
            self.current.wait_for("new-chain")
            return
        self.current.wait_for("ready")
        if moment == SCHEDULED_FULL:
            done = len(self.current.named("full-backup"))
            self.current.wait_for("full-backup", count=done + 1)
            # The next full starts 300 ms after this one ended and runs a while.
            time.sleep(self.rng.uniform(0.25, 0.8))  # the moment of the crash, not a wait
            return
        lines = log_lines(self.log) + self.rng.randint(1, 25)
        wait_until(logged(self.log, lines), f"the workload logged {lines} lines")


def large_store(tmp_path: Path, *, messages: int) -> tuple[Path, Path, Oracle]:
    """A mail database with `messages` messages of a megabyte each (so that full backups take a
    moment), before any protection."""
    db, repo = tmp_path / "mail.db", tmp_path / "repo"
    new_store(db, repo)
    rng = random.Random(messages)
    with MailDatabase.open(db) as database:
        database.create_mailbox("archive@example.com")
        for number in range(messages):
            message = EmailMessage()
            message["Subject"] = f"large {number}"
            message.set_content("see the attachment")
            message.add_attachment(rng.randbytes(1_000_000), maintype="application",
                                   subtype="octet-stream", filename=f"{number}.bin")
            database.deliver(message.as_bytes(), ["archive@example.com"])
    return db, repo, Oracle(db, repo, tmp_path)


def check_everything(oracle: Oracle, repo: Path) -> None:
    view = timeline(repo)
    for chain in view["chains"][1:]:
        assert chain["reason"], chain
    oracle.check_points()
    oracle.check_latest()


def prune_arguments(repo: Path) -> list[str]:
    # Keeps the latest full backup and what follows it; every older point goes.
    return ["prune", str(repo), "--keep-within", "1ms", "--keep-daily", "0", "--keep-weekly", "0"]


def killed_prune(repo: Path, after: float) -> bool:
    """Run a prune and SIGKILL it `after` seconds in; whether it was still running then."""
    process = subprocess.Popen([*CPS, *prune_arguments(repo)], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    time.sleep(after)  # the moment of the crash, not a wait for anything
    process.send_signal(signal.SIGKILL)
    return process.wait(timeout=DEADLINE_SECONDS) == -signal.SIGKILL


def check_listed_points(oracle: Oracle, repo: Path, *, refused_too: bool = False) -> set[str]:
    """Every recovery point the repository still lists restores to its reference (and, with
    `refused_too`, every other one is refused by name); the names listed."""
    listed = {point["name"] for point in timeline(repo)["recovery_points"]}
    for reference in oracle.references:
        if reference.name in listed:
            oracle.check(reference, "--recovery-point", reference.name)
        elif refused_too:
            output = oracle.folder / "refused.db"
            assert restore_refused(repo, output, "--recovery-point", reference.name).returncode == 31
    return listed
