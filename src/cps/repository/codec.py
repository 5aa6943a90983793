"""The records inside each kind of repository file, encoded and decoded (little-endian).

Small descriptive files (config, key, database, chain, point, status, pruned, drill) hold one
record of UTF-8 JSON with sorted keys. Page-carrying files use fixed structs:

    full backup: record 0 FULL_HEADER + WAL_POSITION, then records of up to IDS_PER_RECORD page ids
      FULL_HEADER  0 u64 chain | 8 u64 txn | 16 u64 taken_at ms | 24 u32 page size | 28 u32 pages
                   32 WAL_POSITION where capture stood when the image was taken

    segment: record 0 SEGMENT_HEADER, then one record holding every transaction, one after the
      other, compressed as it is captured (format 1: one record per transaction; both are read)
      SEGMENT_HEADER  0 u64 chain | 8 u32 page size | 12 u32 transactions
                      16 WAL_POSITION start | 40 WAL_POSITION end
      WAL_POSITION    0 u32 checkpoint seq | 4 u32 salt-1 | 8 u32 salt-2 | 12 u32 frame
                      16 u32 checksum-1 | 20 u32 checksum-2
      transaction     0 u64 txn | 8 u64 seen_at ms | 16 u64 committed_at ms (0: unknown)
                      | 24 u32 database pages | 28 u32 page count,
                      then per page: u32 page number | page image (page size bytes)
                      (formats 1 and 2: TRANSACTION_V2, without committed_at)

    pack: one record per page image, then an index record
      index           u32 count, then per page: 32 bytes page id | u64 offset of the page's stored
                      record bytes in the pack | u32 stored length

Changing a struct here changes the on-disk format: bump FORMAT_VERSION in format.py.
"""

from __future__ import annotations

import dataclasses
import json
import struct
from collections.abc import Iterator
from typing import Any, TypeVar

from ..errors import CorruptFile
from .model import (
    PAGE_ID_SIZE,
    Chain,
    ChainEnd,
    DrilledPoint,
    DrillRecord,
    FullBackup,
    ProtectorStatus,
    PrunedRange,
    Segment,
    Transaction,
    WalPosition,
)

R = TypeVar("R")

FULL_HEADER = struct.Struct("<QQQII")
SEGMENT_HEADER = struct.Struct("<QII")
WAL_POSITION = struct.Struct("<IIIIII")
TRANSACTION = struct.Struct("<QQQII")
TRANSACTION_V2 = struct.Struct("<QQII")  # formats 1 and 2: no committed_at
PAGE_NUMBER = struct.Struct("<I")
INDEX_COUNT = struct.Struct("<I")
INDEX_ENTRY = struct.Struct("<32sQI")
IDS_PER_RECORD = 4096


def encode_json(value: dict[str, Any]) -> bytes:
    return json.dumps(value, sort_keys=True, ensure_ascii=False).encode()


def decode_json(record: bytes, what: str) -> dict[str, Any]:
    try:
        value = json.loads(record)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CorruptFile(f"{what} does not hold valid JSON") from exc
    if not isinstance(value, dict):
        raise CorruptFile(f"{what} does not hold a JSON object")
    return value


def encode_record(record: Any) -> bytes:
    """A record dataclass (DatabaseInfo, Chain, RecoveryPoint, ProtectorStatus, DrillRecord) as
    its JSON."""
    return encode_json(dataclasses.asdict(record))


def decode_record(kind: type[R], value: dict[str, Any], what: str) -> R:
    """A record dataclass from its JSON fields: the fields of older formats may be missing (they
    take their defaults), an unknown or missing required one is damage."""
    try:
        if kind is Chain and value.get("previous") is not None:
            value = {**value, "previous": ChainEnd(**value["previous"])}
        if kind is ProtectorStatus and value.get("position") is not None:
            value = {**value, "position": decode_position(value["position"])}
        if kind is DrillRecord:
            value = {**value, "points": tuple(DrilledPoint(**p) for p in value["points"])}
        return kind(**value)
    except (TypeError, KeyError, ValueError) as exc:
        raise CorruptFile(f"{what} does not hold the fields of a {kind.__name__}: {exc}") from exc


def decode_position(fields: dict[str, Any]) -> WalPosition:
    checksum = fields["checksum"]
    return WalPosition(int(fields["checkpoint_seq"]), int(fields["salt1"]), int(fields["salt2"]),
                       int(fields["frame"]), (int(checksum[0]), int(checksum[1])))


def encode_pruned(ranges: list[PrunedRange]) -> bytes:
    return encode_json({"removed": [dataclasses.asdict(r) for r in ranges]})


def decode_pruned(record: bytes, what: str) -> list[PrunedRange]:
    value = decode_json(record, what)
    try:
        return [PrunedRange(**entry) for entry in value["removed"]]
    except (TypeError, KeyError) as exc:
        raise CorruptFile(f"{what} does not list pruned ranges: {exc}") from exc


def encode_full(full: FullBackup) -> Iterator[bytes]:
    yield (FULL_HEADER.pack(full.chain, full.txn, full.taken_at, full.page_size, full.pages)
           + _position(full.position))
    step = IDS_PER_RECORD * PAGE_ID_SIZE
    for start in range(0, len(full.page_ids), step):
        yield full.page_ids[start : start + step]


def decode_full(records: Iterator[bytes]) -> FullBackup:
    header = next(records)
    _expect_length(header, FULL_HEADER.size + WAL_POSITION.size, "full backup header")
    fields = _unpack(FULL_HEADER, header[: FULL_HEADER.size], "full backup header")
    chain, txn, taken_at, page_size, pages = fields
    position = _read_position(header, FULL_HEADER.size)
    ids = bytearray()
    for record in records:
        if len(record) % PAGE_ID_SIZE:
            raise CorruptFile("a full backup holds a partial page id")
        ids += record
    if len(ids) != pages * PAGE_ID_SIZE:
        raise CorruptFile(f"a full backup lists {len(ids) // PAGE_ID_SIZE} pages, its header says "
                          f"{pages}")
    return FullBackup(chain, txn, taken_at, page_size, position, bytes(ids))


def encode_segment_header(chain: int, page_size: int, count: int, start: WalPosition,
                          end: WalPosition) -> bytes:
    return SEGMENT_HEADER.pack(chain, page_size, count) + _position(start) + _position(end)


def encode_transaction(txn: Transaction) -> bytes:
    """One transaction as laid out in a segment's record 1 (segments.py adds them one by one)."""
    parts = [TRANSACTION.pack(txn.txn, txn.seen_at, txn.committed_at, txn.db_pages,
                              len(txn.pages))]
    for number, image in txn.pages:
        parts.append(PAGE_NUMBER.pack(number))
        parts.append(image)
    return b"".join(parts)


def decode_segment(records: Iterator[bytes], version: int) -> Segment:
    """A segment from its records, as written in format `version`."""
    header = next(records)
    _expect_length(header, SEGMENT_HEADER.size + 2 * WAL_POSITION.size, "segment header")
    chain, page_size, count = _unpack(SEGMENT_HEADER, header[: SEGMENT_HEADER.size], "segment header")
    start = _read_position(header, SEGMENT_HEADER.size)
    end = _read_position(header, SEGMENT_HEADER.size + WAL_POSITION.size)
    shape = TRANSACTION if version >= 3 else TRANSACTION_V2
    transactions = tuple(txn for record in records
                         for txn in _decode_transactions(record, page_size, shape))
    if len(transactions) != count or not transactions:
        raise CorruptFile(f"a segment holds {len(transactions)} transactions, its header says {count}")
    return Segment(chain, page_size, start, end, transactions)


def encode_pack_index(entries: list[tuple[bytes, int, int]]) -> bytes:
    return INDEX_COUNT.pack(len(entries)) + b"".join(INDEX_ENTRY.pack(*e) for e in entries)


def decode_pack_index(record: bytes) -> list[tuple[bytes, int, int]]:
    (count,) = _unpack(INDEX_COUNT, record[: INDEX_COUNT.size], "pack index")
    if len(record) != INDEX_COUNT.size + count * INDEX_ENTRY.size:
        raise CorruptFile("a pack index has the wrong length")
    return list(INDEX_ENTRY.iter_unpack(record[INDEX_COUNT.size :]))


def _decode_transactions(record: bytes, page_size: int, shape: struct.Struct
                         ) -> Iterator[Transaction]:
    """The transactions stored one after the other in `record`, each with a fixed part of
    `shape` (TRANSACTION, or TRANSACTION_V2 in formats 1 and 2)."""
    step = PAGE_NUMBER.size + page_size
    offset = 0
    while offset < len(record):
        fields = _unpack(shape, record[offset : offset + shape.size], "transaction")
        txn, seen_at, *rest = fields
        committed_at, db_pages, count = rest if len(rest) == 3 else (0, *rest)
        start, offset = offset + shape.size, offset + shape.size + count * step
        if offset > len(record):
            raise CorruptFile(f"transaction {txn} runs past the end of its record")
        pages = tuple((PAGE_NUMBER.unpack_from(record, at)[0],
                       record[at + PAGE_NUMBER.size : at + step]) for at in range(start, offset, step))
        yield Transaction(txn, seen_at, db_pages, pages, committed_at)


def _position(position: WalPosition) -> bytes:
    return WAL_POSITION.pack(position.checkpoint_seq, position.salt1, position.salt2,
                             position.frame, *position.checksum)


def _read_position(data: bytes, offset: int) -> WalPosition:
    if len(data) < offset + WAL_POSITION.size:
        raise CorruptFile("a header is truncated")
    seq, salt1, salt2, frame, c1, c2 = WAL_POSITION.unpack_from(data, offset)
    return WalPosition(seq, salt1, salt2, frame, (c1, c2))


def _expect_length(data: bytes, size: int, what: str) -> None:
    if len(data) != size:
        raise CorruptFile(f"{what} has {len(data)} bytes, expected {size}")


def _unpack(shape: struct.Struct, data: bytes, what: str) -> tuple[Any, ...]:
    if len(data) != shape.size:
        raise CorruptFile(f"{what} has {len(data)} bytes, expected {shape.size}")
    return shape.unpack(data)
