"""The records inside full backups, segments and pack indexes (codec.py): Hypothesis round trips,
golden bytes for the fixed layouts, and malformed records refused as CorruptFile."""

from __future__ import annotations

import struct
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cps.errors import CorruptFile
from cps.repository import FullBackup, Segment, Transaction, WalPosition, codec
from cps.repository.crypto import MasterKey, sealing
from cps.repository.format import FLAG_COMPRESSED, FLAG_ENCRYPTED, FORMAT_VERSION, parse_file
from tests.segments import built, plain_records

U32 = st.integers(0, 2**32 - 1)
U64 = st.integers(0, 2**64 - 1)
PAGE_SIZES = st.sampled_from([8, 64, 512])
KEY = MasterKey(bytes(32), bytes(range(32)))

positions = st.builds(WalPosition, U32, U32, U32, U32, st.tuples(U32, U32))


@st.composite
def fulls(draw: st.DrawFn) -> FullBackup:
    ids = draw(st.lists(st.binary(min_size=32, max_size=32), max_size=40))
    return FullBackup(draw(U64), draw(U64), draw(U64), draw(U32), draw(positions), b"".join(ids))


@st.composite
def segments(draw: st.DrawFn) -> Segment:
    page_size = draw(PAGE_SIZES)
    page = st.tuples(U32, st.binary(min_size=page_size, max_size=page_size))
    transactions = draw(st.lists(
        st.builds(Transaction, U64, U64, U32, st.lists(page, max_size=4).map(tuple), U64),
        min_size=1, max_size=5))
    return Segment(draw(U64), page_size, draw(positions), draw(positions), tuple(transactions))


@settings(deadline=None)
@given(full=fulls())
def test_full_backups_round_trip(full: FullBackup) -> None:
    assert codec.decode_full(iter(list(codec.encode_full(full)))) == full


@settings(max_examples=50, deadline=None)
@given(segment=segments(), encrypted=st.booleans())
def test_segments_round_trip_through_a_file(segment: Segment, encrypted: bool) -> None:
    flags = FLAG_COMPRESSED | (FLAG_ENCRYPTED if encrypted else 0)
    seal = sealing(flags, KEY if encrypted else None)
    data = b"".join(built(segment).file_chunks(seal))
    checked = parse_file(Path("s"), data, "segment")
    assert checked.version == FORMAT_VERSION
    assert codec.decode_segment(checked.records(seal), checked.version) == segment


@given(entries=st.lists(st.tuples(st.binary(min_size=32, max_size=32), U64, U32), max_size=30))
def test_pack_indexes_round_trip(entries: list[tuple[bytes, int, int]]) -> None:
    assert codec.decode_pack_index(codec.encode_pack_index(entries)) == entries


@given(value=st.dictionaries(st.text(), st.one_of(st.none(), st.booleans(), st.integers(), st.text())))
def test_json_records_round_trip(value: dict[str, object]) -> None:
    assert codec.decode_json(codec.encode_json(value), "x") == value


POSITION = WalPosition(7, 0x11111111, 0x22222222, 9, (0x33333333, 0x44444444))
POSITION_BYTES = bytes.fromhex("07000000" "11111111" "22222222" "09000000" "33333333" "44444444")


def test_full_backup_header_bytes() -> None:
    full = FullBackup(2, 0x0102030405060708, 1795446624190, 4096, POSITION, bytes(32) * 3)
    header, ids = codec.encode_full(full)
    assert header == (bytes.fromhex("0200000000000000" "0807060504030201")
                      + (1795446624190).to_bytes(8, "little")
                      + bytes.fromhex("00100000" "03000000") + POSITION_BYTES)
    assert ids == bytes(96)


def test_full_backup_ids_are_split_into_records_of_at_most_ids_per_record() -> None:
    count = codec.IDS_PER_RECORD * 2 + 1
    ids = b"".join(n.to_bytes(32, "little") for n in range(count))
    full = FullBackup(1, 1, 0, 512, POSITION, ids)
    records = list(codec.encode_full(full))
    assert [len(r) // 32 for r in records[1:]] == [codec.IDS_PER_RECORD, codec.IDS_PER_RECORD, 1]
    assert codec.decode_full(iter(records)) == full


def test_a_full_backup_of_no_pages_is_its_header_alone() -> None:
    full = FullBackup(1, 1, 0, 4096, POSITION, b"")
    records = list(codec.encode_full(full))
    assert len(records) == 1
    assert codec.decode_full(iter(records)) == full


def test_segment_and_transaction_bytes() -> None:
    txn = Transaction(5, 6, 7, ((3, b"abcd"), (1, b"wxyz")), 8)
    header, record = plain_records(Segment(9, 4, POSITION, POSITION, (txn,)))
    assert header == bytes.fromhex("0900000000000000" "04000000" "01000000") + POSITION_BYTES * 2
    assert record == (struct.pack("<QQQII", 5, 6, 8, 7, 2) + (3).to_bytes(4, "little") + b"abcd"
                      + (1).to_bytes(4, "little") + b"wxyz")


def test_format_2_transactions_have_no_commit_time() -> None:
    header, _record = plain_records(Segment(9, 4, POSITION, POSITION,
                                            (Transaction(5, 6, 7, ((3, b"abcd"),)),)))
    old = struct.pack("<QQII", 5, 6, 7, 1) + (3).to_bytes(4, "little") + b"abcd"
    [txn] = codec.decode_segment(iter([header, old]), 2).transactions
    assert (txn.txn, txn.seen_at, txn.committed_at, txn.db_pages, txn.time) == (5, 6, 0, 7, 6)


def test_pack_index_bytes() -> None:
    record = codec.encode_pack_index([(b"\xaa" * 32, 20, 300)])
    assert record == ((1).to_bytes(4, "little") + b"\xaa" * 32 + (20).to_bytes(8, "little")
                      + (300).to_bytes(4, "little"))


Damage = Callable[[list[bytes]], list[bytes]]


def full_records() -> list[bytes]:
    return list(codec.encode_full(FullBackup(1, 1, 0, 512, POSITION, bytes(64))))


@pytest.mark.parametrize("damage, message", [
    (lambda r: [r[0][:-1], *r[1:]], "full backup header has"),
    (lambda r: [r[0], r[1][:-1]], "partial page id"),
    (lambda r: [r[0], r[1][:-32]], "lists 1 pages, its header says 2"),
    (lambda r: [r[0], r[1], bytes(32)], "lists 3 pages, its header says 2"),
])
def test_malformed_full_backups_are_corrupt(damage: Damage, message: str) -> None:
    with pytest.raises(CorruptFile, match=message):
        codec.decode_full(iter(damage(full_records())))


def segment_records() -> list[bytes]:
    txn = Transaction(2, 0, 1, ((1, b"p" * 8),))
    return plain_records(Segment(1, 8, POSITION, POSITION, (txn, txn)))


def test_a_segment_stores_its_transactions_in_one_record() -> None:
    header, record = segment_records()
    assert len(record) == 2 * (struct.calcsize("<QQQII") + 4 + 8)


def test_format_1_segments_with_a_record_per_transaction_still_decode() -> None:
    header, record = segment_records()
    half = len(record) // 2
    segment = codec.decode_segment(iter([header, record[:half], record[half:]]), FORMAT_VERSION)
    assert segment == codec.decode_segment(iter([header, record]), FORMAT_VERSION)
    assert [t.txn for t in segment.transactions] == [2, 2]


@pytest.mark.parametrize("damage, message", [
    (lambda r: [r[0][:-1], *r[1:]], "segment header has"),
    (lambda r: [r[0], r[1][: len(r[1]) // 2]], "holds 1 transactions, its header says 2"),
    (lambda r: [*r, r[1][: len(r[1]) // 2]], "holds 3 transactions, its header says 2"),
    (lambda r: [r[0], r[1][:-1]], "transaction 2 runs past the end of its record"),
    (lambda r: [r[0], r[1] + b"x"], "transaction has 1 bytes"),
    (lambda r: [r[0], r[1][:10]], "transaction has 10 bytes"),
])
def test_malformed_segments_are_corrupt(damage: Damage, message: str) -> None:
    with pytest.raises(CorruptFile, match=message):
        codec.decode_segment(iter(damage(segment_records())), FORMAT_VERSION)


def test_a_segment_without_transactions_is_corrupt() -> None:
    header = segment_records()[0][:12] + bytes(4) + segment_records()[0][16:]
    with pytest.raises(CorruptFile, match="holds 0 transactions"):
        codec.decode_segment(iter([header]), FORMAT_VERSION)


@pytest.mark.parametrize("record", [b"", b"\x01\x00\x00", (1).to_bytes(4, "little") + bytes(43),
                                    (1).to_bytes(4, "little") + bytes(45), (0).to_bytes(4, "little") + b"x"])
def test_malformed_pack_indexes_are_corrupt(record: bytes) -> None:
    with pytest.raises(CorruptFile):
        codec.decode_pack_index(record)


@pytest.mark.parametrize("record", [b"\xff\xfe", b"{not json", b"[1, 2]", b'"text"'])
def test_json_records_that_are_no_object_are_corrupt(record: bytes) -> None:
    with pytest.raises(CorruptFile, match="chain file"):
        codec.decode_json(record, "chain file")


def test_json_records_have_sorted_keys() -> None:
    assert codec.encode_json({"b": 1, "a": "é"}) == '{"a": "é", "b": 1}'.encode()
