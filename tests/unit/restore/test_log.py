"""`read_log`, which restore and granular recovery both apply: a plan's transactions after its full
backup, in order, up to its end, and a segment that cannot be read named by its range, after the
transactions before it. Repositories written here with made-up transactions (the log is read, not
applied, so a transaction's pages need not make a database)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cps.errors import RestoreError
from cps.repository import (
    Chain,
    DatabaseInfo,
    FullBackup,
    Repository,
    Segment,
    SegmentRef,
    Transaction,
    WalPosition,
)
from cps.restore import LogUnreadable, Target, format_ms, load_catalog, plan_restore, read_log
from tests.segments import built

PAGE_SIZE = 512
STARTED = 1_795_400_000_000
POSITION = WalPosition(0, 0, 0, 0, (0, 0))
# Transaction 1 is the first full backup's; the segments hold transactions 2 to 9, seen a second
# apart, except transaction 5, seen before transaction 4: capture's clock stepped back.
SEEN = {2: 2000, 3: 3000, 4: 4000, 5: 3500, 6: 6000, 7: 7000, 8: 8000, 9: 9000}
SEGMENTS = [(2, 3, 4), (5, 6, 7), (8, 9)]


def transaction(txn: int) -> Transaction:
    return Transaction(txn, STARTED + SEEN[txn], 1, ((1, bytes([txn]) * PAGE_SIZE),))


def write_repository(root: Path, second_full_at: int | None = None) -> tuple[Repository,
                                                                             list[SegmentRef]]:
    repo = Repository.init(root)
    repo.add_database(DatabaseInfo("mail", "/nowhere/mail.db", PAGE_SIZE, STARTED))
    repo.write_chain("mail", Chain(1, STARTED, 1, "protection started"))
    writer = repo.page_writer()
    page = bytes(PAGE_SIZE)
    writer.add(repo.page_id(page), page)
    writer.flush()
    for txn in [1] if second_full_at is None else [1, second_full_at]:
        repo.write_full("mail", FullBackup(1, txn, STARTED + txn * 1000, PAGE_SIZE, POSITION,
                                           repo.page_id(page)))
    refs = [repo.write_segment("mail", built(Segment(1, PAGE_SIZE, POSITION, POSITION,
                                                     tuple(map(transaction, txns)))))
            for txns in SEGMENTS]
    return repo, refs


def logged(repo: Repository, target: Target) -> list[int]:
    plan = plan_restore(load_catalog(repo, "mail"), target)
    return [t.txn for t in read_log(repo, plan, plan.bases[0])]


def test_the_transactions_after_the_full_backup_up_to_the_target(tmp_path: Path) -> None:
    repo, _refs = write_repository(tmp_path / "repo", second_full_at=3)
    assert logged(repo, Target("txn", 2)) == [2]  # from the first full
    assert logged(repo, Target("txn", 6)) == [4, 5, 6]  # from the full inside the first segment
    assert logged(repo, Target("txn", 3)) == []  # the full itself
    assert logged(repo, Target("latest")) == [4, 5, 6, 7, 8, 9]


def test_a_time_ends_the_log_at_the_first_transaction_seen_after_it(tmp_path: Path) -> None:
    repo, _refs = write_repository(tmp_path / "repo")
    # Transaction 5 was seen before the target, but after transaction 4, which was not.
    assert logged(repo, Target("time", STARTED + 3800)) == [2, 3]
    assert logged(repo, Target("time", STARTED + 4000)) == [2, 3, 4, 5]
    assert logged(repo, Target("time", STARTED + 8500)) == [2, 3, 4, 5, 6, 7, 8]


def test_an_unreadable_segment_ends_the_log_after_the_transactions_before_it(
        tmp_path: Path) -> None:
    repo, refs = write_repository(tmp_path / "repo")
    damaged = repo.location / repo.segment_key("mail", refs[1])
    damaged.write_bytes(damaged.read_bytes()[:-3])
    read = []
    plan = plan_restore(load_catalog(repo, "mail"), Target("txn", 9))
    with pytest.raises(LogUnreadable) as raised:
        read.extend(t.txn for t in read_log(repo, plan, plan.bases[0]))
    assert read == [2, 3, 4]
    assert raised.value.segment == refs[1] and isinstance(raised.value, RestoreError)
    assert raised.value.code == "damaged"
    message = raised.value.message
    assert message.startswith(f"transactions 5 to 7 ({format_ms(STARTED + 3500)} to "
                              f"{format_ms(STARTED + 7000)}) cannot be read: ")
    assert damaged.name in message


def test_a_segment_past_the_end_is_never_an_error(tmp_path: Path) -> None:
    repo, refs = write_repository(tmp_path / "repo")
    damaged = repo.location / repo.segment_key("mail", refs[1])
    damaged.write_bytes(damaged.read_bytes()[:-3])
    plan = plan_restore(load_catalog(repo, "mail"), Target("time", STARTED + 3800))
    # Its first transaction was seen before the time, so the plan lists the segment; the log ends
    # before it, at transaction 4, seen after the time.
    assert refs[1] in plan.segments
    assert [t.txn for t in read_log(repo, plan, plan.bases[0])] == [2, 3]
