"""`restore` of repositories written here from a real SQLite file: the full backup is the file's
pages at its first state, and each transaction holds the pages that changed from one state to the
next, as the log holds them. A restore to transaction k must give the file as it was after k, byte
for byte: with pages the log writes many times, a database that shrinks and grows again, pages the
full backup lists more than once, in packs of their own and shared, plain and encrypted."""

from __future__ import annotations

import random
import sqlite3
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

import numpy as np
import pytest

from cps.errors import CorruptFile, CPSError, MissingFile
from cps.repository import (
    Chain,
    DatabaseInfo,
    FullBackup,
    Repository,
    Segment,
    Transaction,
    WalPosition,
)
from cps.restore import Target, load_catalog, plan_restore, restore
from cps.restore import apply as restore_apply
from tests.segments import built

PAGE_SIZE = 1024
STARTED = 1_795_400_000_000  # ms; transaction n is seen STARTED + n seconds
POSITION = WalPosition(0, 0, 0, 0, (0, 0))
PAGES_PER_PACK = 7  # small packs, so the full backup spans many and lists pages in several


def database_states(path: Path) -> list[bytes]:
    """The file after each of a run of transactions, the first state being the full backup's.
    Deleted rows leave zeroed free pages (secure_delete): the same page many times in one file."""
    rng = random.Random(5)
    states = []
    with closing(sqlite3.connect(path, isolation_level=None)) as db:
        db.execute(f"PRAGMA page_size = {PAGE_SIZE}")
        db.execute("PRAGMA secure_delete = ON")
        db.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
        db.executemany("INSERT INTO notes (body) VALUES (?)",
                       [(rng.randbytes(300).hex(),) for _ in range(120)])
        db.execute("DELETE FROM notes WHERE id % 3 = 0")
        states.append(path.read_bytes())

        def step(sql: str, *args: object) -> None:
            db.execute(sql, args)
            states.append(path.read_bytes())

        for _ in range(4):  # page 1 and the same leaves, again and again
            step("UPDATE notes SET body = ? WHERE id < 10", rng.randbytes(100).hex())
        step("INSERT INTO notes (body) SELECT body FROM notes WHERE id < 40")
        step("DELETE FROM notes WHERE id > 60")
        step("VACUUM")  # the file shrinks
        for _ in range(3):  # and grows again
            step("INSERT INTO notes (body) VALUES (?)", rng.randbytes(2000).hex())
        step("UPDATE notes SET body = upper(body) WHERE id % 2 = 1")
    return states


def pages_of(state: bytes) -> list[bytes]:
    return [state[start : start + PAGE_SIZE] for start in range(0, len(state), PAGE_SIZE)]


def write_repository(root: Path, states: list[bytes], passphrase: str | None = None,
                     transactions_per_segment: int = 3) -> Repository:
    """Transaction 1 is the full backup of states[0]; transaction n + 1 changed states[n - 1] to
    states[n]."""
    repo = Repository.init(root, passphrase=passphrase)
    repo.add_database(DatabaseInfo("mail", "/nowhere/mail.db", PAGE_SIZE, STARTED))
    repo.write_chain("mail", Chain(1, STARTED, 1, "protection started"))
    writer = repo.page_writer()
    ids = b""
    for number, page in enumerate(pages_of(states[0]), start=1):
        ids += repo.page_id(page)
        writer.add(repo.page_id(page), page)
        if number % PAGES_PER_PACK == 0:
            writer.flush()
    writer.flush()
    repo.write_full("mail", FullBackup(1, 1, STARTED, PAGE_SIZE, POSITION, ids))
    transactions = []
    for txn, (before, after) in enumerate(zip(states, states[1:], strict=False), start=2):
        old = pages_of(before)
        changed = tuple((number, page) for number, page in enumerate(pages_of(after), start=1)
                        if number > len(old) or old[number - 1] != page)
        transactions.append(Transaction(txn, STARTED + txn * 1000, len(after) // PAGE_SIZE, changed))
    for start in range(0, len(transactions), transactions_per_segment):
        batch = tuple(transactions[start : start + transactions_per_segment])
        repo.write_segment("mail", built(Segment(1, PAGE_SIZE, POSITION, POSITION, batch)))
    return repo


@pytest.fixture(scope="module")
def states(tmp_path_factory: pytest.TempPathFactory) -> list[bytes]:
    return database_states(tmp_path_factory.mktemp("source") / "mail.db")


def restored(repo: Repository, target: Target, output: Path) -> bytes:
    result = restore(repo, plan_restore(load_catalog(repo, "mail"), target), output)
    assert result.pages * PAGE_SIZE == output.stat().st_size
    return output.read_bytes()


def test_the_states_cover_what_the_restore_must_get_right(states: list[bytes]) -> None:
    sizes = [len(state) for state in states]
    shrinks = [k for k in range(1, len(sizes)) if sizes[k] < sizes[k - 1]]
    assert shrinks and any(sizes[k] > sizes[k - 1] for k in range(shrinks[0] + 1, len(sizes)))
    full = pages_of(states[0])
    assert len(set(full)) < len(full) - 5, "the full backup lists a page many times"
    rewritten = [pages_of(after)[0] != pages_of(before)[0]
                 for before, after in zip(states, states[1:], strict=False)]
    assert all(rewritten), "page 1 is written by every transaction"


@pytest.mark.parametrize("passphrase", [None, "restore test"], ids=["plain", "encrypted"])
def test_every_transaction_restores_to_the_file_as_it_was(
        states: list[bytes], tmp_path: Path, passphrase: str | None) -> None:
    repo = write_repository(tmp_path / "repo", states, passphrase)
    for txn, state in enumerate(states, start=1):
        assert restored(repo, Target("txn", txn), tmp_path / f"at-{txn}.db") == state, txn
    assert restored(repo, Target("latest"), tmp_path / "latest.db") == states[-1]


def test_a_time_between_transactions_restores_the_one_before(
        states: list[bytes], tmp_path: Path) -> None:
    repo = write_repository(tmp_path / "repo", states)
    for txn in (4, 8):  # the last transaction of a segment, the first of another
        at = STARTED + txn * 1000 + 500
        assert restored(repo, Target("time", at), tmp_path / f"at-{txn}.db") == states[txn - 1]


def test_a_log_written_out_early_and_short_runs_still_restore_exactly(
        states: list[bytes], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A page or two held at a time, and every run cut at two pages: the paths a large log and a
    # large database take, on a small one.
    monkeypatch.setattr(restore_apply, "LOG_HELD_BYTES", PAGE_SIZE)
    monkeypatch.setattr(restore_apply, "RUN_BYTES", 2 * PAGE_SIZE)
    repo = write_repository(tmp_path / "repo", states, transactions_per_segment=1)
    for txn in (2, 7, 9, len(states)):
        assert restored(repo, Target("txn", txn), tmp_path / f"at-{txn}.db") == states[txn - 1]


def full_backup_packs(repo: Repository) -> dict[Path, list[int]]:
    """The pack files of the full backup, and the page numbers each holds."""
    [ref] = repo.fulls("mail", 1)
    full = repo.read_full("mail", ref)
    index = repo.page_index()
    held: dict[Path, list[int]] = {}
    for number, row in enumerate(index.locate(np.frombuffer(full.page_ids, "S32")).tolist(), 1):
        held.setdefault(repo.location / index.location(row).pack, []).append(number)
    return held


def written_by_the_log(states: list[bytes]) -> set[int]:
    return {number for before, after in zip(states, states[1:], strict=False)
            for number, page in enumerate(pages_of(after), start=1)
            if number > len(before) // PAGE_SIZE or pages_of(before)[number - 1] != page}


def remove(path: Path) -> None:
    path.unlink()


def cut(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:-10])


@pytest.mark.parametrize("damage, error", [(remove, MissingFile), (cut, CorruptFile)],
                         ids=["missing", "truncated"])
def test_a_pack_of_pages_the_log_wrote_over_is_still_damage(
        states: list[bytes], tmp_path: Path, damage: Callable[[Path], None],
        error: type[CPSError]) -> None:
    repo = write_repository(tmp_path / "repo", states)
    final_pages = len(states[-1]) // PAGE_SIZE
    pack = next(pack for pack, numbers in full_backup_packs(repo).items()
                if all(n in written_by_the_log(states) or n > final_pages for n in numbers))
    damage(pack)  # the latest state needs no page of it
    output = tmp_path / "out" / "latest.db"
    output.parent.mkdir()
    with pytest.raises(error) as raised:
        restore(repo, plan_restore(load_catalog(repo, "mail"), Target("latest")), output)
    [ref] = repo.fulls("mail", 1)
    assert repo.full_name(ref) in raised.value.message
    assert list(output.parent.iterdir()) == [], "a failed restore left files behind"


def test_a_page_of_the_wrong_size_in_a_pack_is_damage_naming_the_pack(
        states: list[bytes], tmp_path: Path) -> None:
    repo = write_repository(tmp_path / "repo", states)
    [ref] = repo.fulls("mail", 1)
    full = repo.read_full("mail", ref)
    for pack in repo.location.glob("packs/*/*.pack"):
        pack.unlink()
    pages = pages_of(states[0])
    short = next(n for n, page in enumerate(pages, start=1) if pages.count(page) == 1)
    writer = repo.page_writer()  # the full backup's pages again, one of them a byte short
    for number, page in enumerate(pages, start=1):
        writer.add(full.page_id(number), page[:-1] if number == short else page)
    [(_id, location), *_rest] = writer.flush()
    output = tmp_path / "out.db"
    with pytest.raises(CorruptFile) as raised:
        restore(repo, plan_restore(load_catalog(repo, "mail"), Target("txn", 1)), output)
    assert location.pack in raised.value.message
    assert f"{PAGE_SIZE - 1} bytes" in raised.value.message
    assert not output.exists() and not output.with_name("out.db.partial").exists()
