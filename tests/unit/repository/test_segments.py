"""Segments built transaction by transaction (segments.py): what is written reads back as the
transactions added, a page written again costs a reference, and an unfinished segment is dropped
when the next one starts."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import zstandard

from cps.errors import CorruptFile
from cps.repository import (
    Chain,
    DatabaseInfo,
    RecordCompressor,
    Repository,
    SegmentBuilder,
    Transaction,
    WalPosition,
    crypto,
)

PAGE_SIZE = 4096
START = WalPosition(1, 2, 3, 0, (4, 5))
END = WalPosition(1, 2, 3, 60, (6, 7))


@pytest.fixture(params=[None, "secret"], ids=["plain", "encrypted"])
def repo(request: pytest.FixtureRequest, tmp_path: Path) -> Repository:
    repo = Repository.init(tmp_path / "repo", passphrase=request.param)
    repo.add_database(DatabaseInfo("db", "/srv/mail.db", PAGE_SIZE, 1))
    repo.write_chain("db", Chain(1, 1, 1, "first protection of this database"))
    return repo


def test_a_built_segment_reads_back_as_the_transactions_added(repo: Repository) -> None:
    hot = os.urandom(PAGE_SIZE)  # rewritten by every transaction, as a b-tree root is
    added = [Transaction(txn, 1000 + txn, 9, ((1, hot), (txn, os.urandom(PAGE_SIZE))))
             for txn in range(2, 62)]
    builder = SegmentBuilder(1, PAGE_SIZE, START, RecordCompressor())
    for txn in added:
        builder.add(txn)
    assert builder.page_bytes == 120 * PAGE_SIZE
    segment = builder.finish(END)
    assert zstandard.frame_content_size(segment.compressed[0]) == -1  # compressed as it came
    # The hot page is stored once: 60 new random pages, plus about one more.
    assert segment.compressed_size < 62 * PAGE_SIZE

    ref = repo.write_segment("db", segment)
    assert (ref.first_txn, ref.last_txn, ref.first_time, ref.last_time) == (2, 61, 1002, 1061)
    read = repo.read_segment("db", ref)
    assert read.transactions == tuple(added)
    assert (read.start, read.end, read.page_size) == (START, END, PAGE_SIZE)


def test_starting_a_segment_drops_an_unfinished_one(repo: Repository) -> None:
    compressor = RecordCompressor()
    dropped = SegmentBuilder(1, PAGE_SIZE, START, compressor)
    dropped.add(Transaction(2, 1000, 1, ((1, b"d" * PAGE_SIZE),)))
    kept = Transaction(2, 2000, 1, ((1, b"k" * PAGE_SIZE),))
    builder = SegmentBuilder(1, PAGE_SIZE, START, compressor)
    builder.add(kept)
    ref = repo.write_segment("db", builder.finish(END))
    assert repo.read_segment("db", ref).transactions == (kept,)


def test_a_frame_without_its_size_is_decompressed_to_at_most_the_limit(
        monkeypatch: pytest.MonkeyPatch) -> None:
    compressor = RecordCompressor()
    compressor.add(bytes(3 * crypto.UNSIZED_READ))
    frame = b"".join(compressor.finish())
    assert crypto.decompress(frame) == bytes(3 * crypto.UNSIZED_READ)
    monkeypatch.setattr(crypto, "MAX_DECOMPRESSED", 2 * crypto.UNSIZED_READ)
    with pytest.raises(CorruptFile, match="decompresses to more than"):
        crypto.decompress(frame)


def test_a_record_sealed_in_pieces_opens_whole() -> None:
    key = crypto.MasterKey(bytes(range(32)), bytes(32))
    pieces = [b"first ", b"", b"second" * 1000]
    stored = b"".join(key.seal_pieces(pieces))
    assert len(stored) == crypto.NONCE_SIZE + 6006 + 16
    assert key.open(stored) == b"".join(pieces)
    with pytest.raises(CorruptFile):
        key.open(stored[:-1] + bytes([stored[-1] ^ 1]))
