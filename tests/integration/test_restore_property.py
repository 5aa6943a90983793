"""Right or refused, whatever happened to the repository: for one protected history, random prune
policies and random damage (one file deleted, cut short or with a byte flipped), every restore
target either gives exactly the state the database had then or is refused with a code that says
the repository does not cover it or is damaged; with best effort, a result that is not the target
is exactly the state of the transaction it reports.

The oracle is independent of CPS's capture: the test is the mail application. It writes one
transaction at a time through the store's API while `cps protect` runs in its own process, and
after each it records the commit clock (the time the store stamped on that transaction) and the
database's canonical dump. The history has two chains: between them, the protector is stopped,
the application writes and truncates the WAL, so those states are never captured, and a restore
to their times must be refused. Transactions are named by the commit times the pristine
repository records; a restored database names its own state by its commit clock, and must then
hold the very dump recorded for it.
"""

from __future__ import annotations

import os
import random
import shutil
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from cps.errors import CPSError
from cps.repository import Repository
from cps.repository.prune import Retention, prune
from cps.restore import Target, resolve, restore
from cps.store import MailDatabase
from cps.store.dump import dump_lines
from tests.integration.protect_helpers import (
    QUICK,
    create_point,
    new_store,
    protecting,
)

SEED = 20261209
CASES = 40  # damaged and pruned copies of the history
TARGETS = 14  # restores tried on each
REFUSALS = {"not-covered", "damaged", "corrupt", "missing"}
ALICE, BOB = "alice@example.com", "bob@example.com"


@dataclass(frozen=True, slots=True)
class State:
    clock: int  # the commit clock: the time the store stamped on the transaction (µs)
    dump: str
    captured: bool = True

    @property
    def ms(self) -> int:
        return self.clock // 1000  # as a restore to a time reads it


@dataclass
class History:
    repo: Path  # pristine: copied before each case
    states: list[State]  # every state the database went through, in order, captured or not
    by_clock: dict[int, State]
    by_txn: dict[int, State]  # the captured ones, by transaction number
    latest: State
    points: dict[str, int]  # recovery point name -> transaction
    uncaptured: list[State]  # committed while no protector watched, then checkpointed away

    def state_of(self, db: Path) -> State:
        """The recorded state a restored database is, found by its commit clock and then
        required to hold that state's very dump."""
        found = self.by_clock.get(commit_clock(db))
        assert found is not None, f"{db} is at a commit time the application never saw"
        with MailDatabase.open(db, readonly=True) as database:
            assert "".join(dump_lines(database.connection)) == found.dump, "another content"
        return found

    def at(self, ms: int) -> State | None:
        """The state at time `ms` (the last committed by then), None when it was never captured."""
        state = [s for s in self.states if s.ms <= ms][-1]
        return state if state.captured else None


def commit_clock(db: Path) -> int:
    with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as connection:
        return int(connection.execute("SELECT committed_at FROM cps_commit_clock").fetchone()[0])


def snapshot(database: MailDatabase) -> State:
    clock = database.connection.execute("SELECT committed_at FROM cps_commit_clock").fetchone()
    return State(int(clock[0]), "".join(dump_lines(database.connection)))


def write_one(database: MailDatabase, rng: random.Random, step: int) -> None:
    """One write transaction of the store's API, chosen at random."""
    address = rng.choice([ALICE, BOB])
    inbox = database.messages(address, "Inbox")
    choice = rng.random()
    if choice < 0.55 or not inbox:
        body = f"Subject: step {step}\r\nFrom: x@example.org\r\n\r\n" + "line\r\n" * rng.randint(
            1, 400)
        database.deliver(body.encode(), [address])
    elif choice < 0.7:
        database.set_flags([rng.choice(inbox).id], add=["\\Seen"])
    elif choice < 0.85:
        database.move([rng.choice(inbox).id], address, "Archive")
    else:
        database.delete([rng.choice(inbox).id])


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> Iterator[History]:
    folder = tmp_path_factory.mktemp("history")
    db, repo = folder / "mail.db", folder / "repo"
    new_store(db, repo)
    rng = random.Random(SEED)
    states: list[State] = []
    points: dict[str, int] = {}
    uncaptured: list[State] = []
    with MailDatabase.open(db) as database:
        for address in (ALICE, BOB):
            database.create_mailbox(address)
            database.create_folder(address, "Archive")
        for chain in range(2):
            with protecting(db, repo, *QUICK, "--full-every", "1s") as protector:
                states.append(snapshot(database))  # the chain's full backup
                for step in range(90):
                    write_one(database, rng, step)
                    states.append(snapshot(database))
                    if step % 30 == 29:
                        points[f"c{chain}s{step}"] = create_point(db, repo, f"c{chain}s{step}")
                protector.stop()
            if chain == 0:  # never captured: written, then checkpointed away, unprotected
                for step in range(5):
                    write_one(database, rng, 1000 + step)
                    uncaptured.append(replace(snapshot(database), captured=False))
                database.connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                states += uncaptured
    captured = [s for s in states if s.captured]
    by_clock = {s.clock: s for s in states}
    yield History(repo, states, by_clock, txns_of(repo, captured), captured[-1], points,
                  uncaptured)


def txns_of(repo_path: Path, states: list[State]) -> dict[int, State]:
    """Transaction numbers of the captured states, in commit order, each transaction matched to
    the next state with its commit time (to the millisecond, as the repository keeps it); a
    chain's first full backup is the state just before its first transaction."""
    repo = Repository.open(repo_path)
    found: dict[int, State] = {}
    next_state = 0
    for chain in repo.chains("mail"):
        first = True
        for ref in repo.segments("mail", chain.chain):
            for transaction in repo.read_segment("mail", ref).transactions:
                while states[next_state].ms != transaction.committed_at:
                    next_state += 1
                if first:
                    found[chain.first_txn] = states[next_state - 1]
                    first = False
                found[transaction.txn] = states[next_state]
                next_state += 1
    return found


def damage(repo: Path, rng: random.Random) -> str:
    files = [p for p in sorted(repo.rglob("*")) if p.is_file()
             and not {"locks", "requests"} & set(p.relative_to(repo).parts)]
    path = rng.choice(files)
    action = rng.choice(["delete", "truncate", "flip"])
    if action == "delete":
        path.unlink()
    elif action == "truncate":
        os.truncate(path, rng.randrange(path.stat().st_size))
    else:
        data = bytearray(path.read_bytes())
        data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        path.write_bytes(bytes(data))
    return f"{action} {path.relative_to(repo)}"


def targets(history: History, rng: random.Random) -> list[tuple[Target, State | None]]:
    """Targets with the state they must give (None: the repository cannot have it)."""
    chosen: list[tuple[Target, State | None]] = [(Target("latest"), history.latest)]
    for txn in rng.sample(sorted(history.by_txn), TARGETS // 2):
        chosen.append((Target("txn", txn), history.by_txn[txn]))
    captured = list(history.by_txn.values())
    for state in rng.sample(captured, TARGETS // 2 - 2):
        chosen.append((Target("time", state.ms), history.at(state.ms)))
    state = rng.choice(history.uncaptured[:-1])  # the last one is the next chain's full backup
    chosen.append((Target("time", state.ms), history.at(state.ms)))
    name = rng.choice(sorted(history.points))
    chosen.append((Target("point", name), history.by_txn[history.points[name]]))
    return chosen


def outcome(history: History, repo: Repository, target: Target, expected: State | None,
            output: Path, *, best_effort: bool) -> str:
    """What restoring `target` gave, checked: "exact", "earlier" (best effort) or the code of
    the refusal. An AssertionError when it gave anything else."""
    try:
        _catalog, plan = resolve(repo, "mail", target, best_effort=best_effort, wait=0)
        result = restore(repo, plan, output, force=True, best_effort=best_effort)
    except CPSError as refused:
        assert refused.code in REFUSALS, f"{target}: refused with {refused.code}: {refused}"
        return refused.code
    got = history.state_of(output)
    if result.damaged is None:
        assert expected is not None, f"{target} restored a state the repository cannot have"
        assert got == expected, f"{target} restored transaction {result.txn}, another state"
        return "exact"
    assert best_effort, f"{target}: a shortfall without best effort"
    assert got == history.by_txn[result.txn], f"{target}: best effort is not its transaction"
    return "earlier"


def test_every_target_is_exact_or_refused_under_any_damage_and_prune(history: History,
                                                                     tmp_path: Path) -> None:
    rng = random.Random(SEED + 1)
    seen: dict[str, int] = {}
    end = max(history.by_clock) / 1_000_000
    for case in range(CASES):
        copy = tmp_path / f"case-{case}"
        shutil.copytree(history.repo, copy)
        what = []
        if rng.random() < 0.5:
            retention = Retention(rng.uniform(0, 8), rng.randint(0, 1), 0)
            prune(Repository.open(copy), retention, now=end + rng.uniform(0, 4))
            what.append(f"prune {retention}")
        what.append(damage(copy, rng))
        try:
            repo = Repository.open(copy)
        except CPSError as refused:
            assert refused.code in {*REFUSALS, "not-a-repo"}, f"{what}: {refused.code}"
            continue
        for target, expected in targets(history, rng):
            for best_effort in (False, True):
                output = tmp_path / "restored.db"
                result = outcome(history, repo, target, expected, output, best_effort=best_effort)
                seen[result] = seen.get(result, 0) + 1
                assert not Path(f"{output}.partial").exists(), what
        shutil.rmtree(copy)
    # The cases must have exercised every outcome, or the test proves little.
    assert seen.get("exact", 0) > CASES and seen.get("earlier", 0) > 0, seen
    assert seen.get("damaged", 0) > 0 and seen.get("not-covered", 0) > 0, seen
