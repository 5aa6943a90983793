"""The segment writer against a real repository on disk: order, durability, and a folder that
cannot be written for a while (a file where the segments folder should be)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from cps.capture.segment_writer import SegmentWriter
from cps.repository import (
    BuiltSegment,
    Chain,
    DatabaseInfo,
    Repository,
    Segment,
    Transaction,
    WalPosition,
)
from cps.repository.naming import chain_dir
from tests.segments import built

PAGE = 4096


@pytest.fixture
def repo(tmp_path: Path) -> Repository:
    repository = Repository.init(tmp_path / "repo")
    repository.add_database(DatabaseInfo("db", "/nowhere/db", PAGE, 0))
    repository.write_chain("db", Chain(1, 0, 1, "test"))
    return repository


@pytest.fixture
def writer(repo: Repository) -> Iterator[SegmentWriter]:
    segment_writer = SegmentWriter(repo, "db", max_waiting_bytes=1 << 20)
    yield segment_writer
    segment_writer.close()


def segment(first: int, count: int, seen_at: int) -> BuiltSegment:
    transactions = tuple(Transaction(txn, seen_at, 2, ((1, bytes([txn % 256]) * PAGE),))
                         for txn in range(first, first + count))
    return built(Segment(1, PAGE, WalPosition(0, 1, 2, first, (0, 0)),
                         WalPosition(0, 1, 2, first + count, (0, 0)), transactions))


def written(repo: Repository) -> list[int]:
    return [txn for ref in repo.segments("db", 1)
            for txn in (t.txn for t in repo.read_segment("db", ref).transactions)]


def test_segments_become_durable_in_the_order_handed_over(repo: Repository,
                                                          writer: SegmentWriter) -> None:
    for number in range(5):
        writer.hand_over(segment(1 + number * 3, 3, seen_at=1000 + number), 2000 + number)
    assert writer.wait_durable()
    assert writer.idle and not writer.failing
    assert written(repo) == list(range(1, 16))
    assert writer.synced_through == 2004
    assert len(writer.lags()) == 15


def test_a_folder_that_cannot_be_written_keeps_every_transaction(repo: Repository,
                                                                 writer: SegmentWriter) -> None:
    writer.hand_over(segment(1, 2, seen_at=1000), 1500)
    assert writer.wait_durable()
    folder = repo.location / chain_dir("db", 1) / "segments"
    shutil.rmtree(folder)
    folder.write_bytes(b"")  # a file where the folder should be: every write fails
    writer.hand_over(segment(3, 2, seen_at=2000), 2500)
    writer.hand_over(segment(5, 1, seen_at=3000), 3500)
    assert not writer.wait_durable()
    assert writer.failing and not writer.idle
    assert writer.failures(), "the failure was not reported"
    assert writer.synced_through == 1500  # only what is durable

    folder.unlink()
    folder.mkdir()
    assert writer.wait_durable()
    assert not writer.failing
    assert [ref.first_txn for ref in repo.segments("db", 1)] == [3, 5]  # the first was removed
    assert written(repo) == [3, 4, 5]
    assert writer.synced_through == 3500


def test_closing_gives_up_on_a_folder_that_cannot_be_written(repo: Repository) -> None:
    writer = SegmentWriter(repo, "db", max_waiting_bytes=1 << 20)
    folder = repo.location / chain_dir("db", 1) / "segments"
    folder.write_bytes(b"")  # a file where the folder should be (none was made yet)
    writer.hand_over(segment(1, 2, seen_at=1000), 1500)
    writer.close()  # returns: one more attempt, then it stops
    assert not writer.idle and writer.synced_through == 0
