"""Restores judged against the truth: copies of the live database taken at known states while
`cps protect` runs in its own process and the workload changes the database.

A recovery point and a copy taken with no writer running between them are the same state, so the
point must restore to exactly the copy. For restores to a time, the copies are taken while the
workload keeps writing; see `test_restore_at_time_gives_the_state_copied_at_that_time` for how a
time is found that names the copied state exactly.
"""

from __future__ import annotations

import random
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from cps.store import MailDatabase
from cps.store.workload import LogModel, database_content, read_log
from cps.store.workload.replay import Content
from tests.conftest import run_cps
from tests.integration.protect_helpers import (
    QUICK,
    Oracle,
    Reference,
    application,
    assert_same,
    at_argument,
    create_point,
    dump,
    finish,
    logged,
    new_store,
    protecting,
    reference_copy,
    restore,
    start_workload,
    timeline,
    wait_until,
    workload,
)

SEED = 20261123


ONE_PROCESS = "one application process"
PROCESS_PER_STEP = "a process per step"


@contextmanager
def writer(kind: str, db: Path) -> Iterator[Callable[[int, int], object]]:
    """What changes the database between recovery points: the workload, run either by one
    application process for the whole test or by a new `cps store workload` process each time."""
    if kind == PROCESS_PER_STEP:
        yield lambda ops, seed: workload(db, ops=ops, seed=seed)
        return
    with application(db, seed=SEED) as app:
        yield lambda ops, _seed: app.run(ops=ops)
        app.close()


@pytest.mark.parametrize("kind", [ONE_PROCESS, PROCESS_PER_STEP])
def test_recovery_points_restore_exactly_their_state(tmp_path: Path, kind: str) -> None:
    db, repo = tmp_path / "mail.db", tmp_path / "repo"
    new_store(db, repo)
    rng = random.Random(SEED)
    oracle = Oracle(db, repo, tmp_path)
    # Full backups every second, so that restores start from different fulls: the points after
    # the second one wait for a full backup taken after it.
    with writer(kind, db) as write, protecting(db, repo, *QUICK, "--full-every", "1s") as protector:
        for step in range(5):
            write(rng.randint(10, 60), step)
            oracle.point(f"p{step}")
            if step == 1:
                protector.wait_for("full-backup", count=2)
        again = oracle.point("no writes since p4")
        stopped = protector.stop()
    assert again.txn == oracle.references[-2].txn
    assert stopped["txn"] == again.txn  # the last point holds every transaction
    assert len(protector.named("full-backup")) >= 2

    oracle.check_points(by_txn=True)
    latest = oracle.check_latest()
    assert run_cps("store", "dump", latest).stdout.decode() == dump(db)
    view = timeline(repo)
    assert len(view["chains"]) == 1
    assert [p["txn"] for p in view["recovery_points"]] == [r.txn for r in oracle.references]


@dataclass(frozen=True, slots=True)
class TimedCopy:
    reference: Reference
    started: float  # time.time() just before the copy began
    ended: float  # and just after it finished: the copied state is the one at some instant between


def test_restore_at_time_gives_exactly_the_state_committed_by_then(tmp_path: Path) -> None:
    """Copies taken at random moments while the workload commits 50 transactions a second; each
    must be exactly what `cps restore --at` gives for the time its last transaction committed,
    and one millisecond earlier, the state before that transaction.

    The store stamps each transaction with its commit time, strictly increasing (its commit
    clock), so a copy carries the time of its own last transaction. The stamp is not taken on
    trust either: every copy must be a state the workload's own log says was current during the
    copy, and the restore must equal the copy row for row, the commit clock included.
    """
    db, repo, log = tmp_path / "mail.db", tmp_path / "repo", tmp_path / "ops.jsonl"
    new_store(db, repo)
    rng = random.Random(SEED + 1)
    total = 200
    copies: list[TimedCopy] = []
    with protecting(db, repo, *QUICK) as protector:
        workload_process = start_workload(db, ops=total, seed=7, rate=50, log=log)
        try:
            for n, lines in enumerate(sorted(rng.sample(range(20, total - 20), 6))):
                wait_until(logged(log, lines), f"{lines} operations ran")
                started = time.time()
                path = reference_copy(db, tmp_path / f"copy{n}.db")
                copies.append(TimedCopy(Reference(f"copy{n}", path), started, time.time()))
        finally:
            finish(workload_process)
        create_point(db, repo, "end")  # everything committed is captured and durable
        protector.stop()

    states = logged_states(log)
    for copy in copies:
        assert_logged_state_of_its_time(copy, states)
        stamp = commit_clock(copy.reference.path) // 1000  # to the millisecond, as --at takes it
        at = restore(repo, tmp_path / f"at-{stamp}.db", "--at", at_argument(stamp))
        assert_same(copy.reference, tmp_path / f"at-{stamp}.db", f"restore --at {stamp}")
        before = restore(repo, tmp_path / f"before-{stamp}.db", "--at", at_argument(stamp - 1))
        assert before["txn"] == at["txn"] - 1
        assert commit_clock(tmp_path / f"before-{stamp}.db") // 1000 < stamp


def commit_clock(db: Path) -> int:
    """The commit time of the last transaction a database holds (the store's commit clock, µs)."""
    with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as connection:
        return int(connection.execute("SELECT committed_at FROM cps_commit_clock").fetchone()[0])


@dataclass(frozen=True, slots=True)
class LoggedState:
    committed_at: float
    content: Content


def logged_states(log: Path) -> list[LoggedState]:
    """The database's content after each committed operation, by replaying the workload's log."""
    model, states = LogModel(), []
    for record in read_log(log):
        if "committed_at" in record:
            model.apply(record)
            states.append(LoggedState(record["committed_at"], model.content()))
    return states


def assert_logged_state_of_its_time(copy: TimedCopy, states: list[LoggedState]) -> None:
    """The copy is the state after some operation that started before the copy ended (its
    predecessor was logged before) and was not yet followed by one that committed before the copy
    began."""
    with MailDatabase.open(copy.reference.path, readonly=True) as database:
        content = database_content(database)
    candidates: list[Any] = []
    for n, state in enumerate(states):
        began_before_end = n == 0 or states[n - 1].committed_at < copy.ended
        next_after_start = n + 1 == len(states) or states[n + 1].committed_at > copy.started
        if began_before_end and next_after_start:
            candidates.append(state.content)
    assert content in candidates, f"{copy.reference.name} is no state the log shows at its time"
