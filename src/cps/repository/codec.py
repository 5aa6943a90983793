"""The records inside each kind of repository file, encoded and decoded (little-endian).

Small descriptive files (config, key, database, chain, point, status) hold one record of UTF-8 JSON
with sorted keys. Page-carrying files use fixed structs:

    full backup: record 0 FULL_HEADER + WAL_POSITION, then records of up to IDS_PER_RECORD page ids
      FULL_HEADER  0 u64 chain | 8 u64 txn | 16 u64 taken_at ms | 24 u32 page size | 28 u32 pages
                   32 WAL_POSITION where capture stood when the image was taken

    segment: record 0 SEGMENT_HEADER, then one record holding every transaction, one after the
      other, compressed as it is captured (format 1: one record per transaction; both are read)
      SEGMENT_HEADER  0 u64 chain | 8 u32 page size | 12 u32 transactions
                      16 WAL_POSITION start | 40 WAL_POSITION end
      WAL_POSITION    0 u32 checkpoint seq | 4 u32 salt-1 | 8 u32 salt-2 | 12 u32 frame
                      16 u32 checksum-1 | 20 u32 checksum-2
      transaction     0 u64 txn | 8 u64 seen_at ms | 16 u32 database pages | 20 u32 page count,
                      then per page: u32 page number | page image (page size bytes)

    pack: one record per page image, then an index record
      index           u32 count, then per page: 32 bytes page id | u64 offset of the page's stored
                      record bytes in the pack | u32 stored length

Changing a struct here changes the on-disk format: bump FORMAT_VERSION in format.py.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from typing import Any

from ..errors import CorruptFile
from .model import PAGE_ID_SIZE, FullBackup, Segment, Transaction, WalPosition

FULL_HEADER = struct.Struct("<QQQII")
SEGMENT_HEADER = struct.Struct("<QII")
WAL_POSITION = struct.Struct("<IIIIII")
TRANSACTION = struct.Struct("<QQII")
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
    parts = [TRANSACTION.pack(txn.txn, txn.seen_at, txn.db_pages, len(txn.pages))]
    for number, image in txn.pages:
        parts.append(PAGE_NUMBER.pack(number))
        parts.append(image)
    return b"".join(parts)


def decode_segment(records: Iterator[bytes]) -> Segment:
    header = next(records)
    _expect_length(header, SEGMENT_HEADER.size + 2 * WAL_POSITION.size, "segment header")
    chain, page_size, count = _unpack(SEGMENT_HEADER, header[: SEGMENT_HEADER.size], "segment header")
    start = _read_position(header, SEGMENT_HEADER.size)
    end = _read_position(header, SEGMENT_HEADER.size + WAL_POSITION.size)
    transactions = tuple(txn for record in records
                         for txn in _decode_transactions(record, page_size))
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


def _decode_transactions(record: bytes, page_size: int) -> Iterator[Transaction]:
    """The transactions stored one after the other in `record`."""
    step = PAGE_NUMBER.size + page_size
    offset = 0
    while offset < len(record):
        header = record[offset : offset + TRANSACTION.size]
        txn, seen_at, db_pages, count = _unpack(TRANSACTION, header, "transaction")
        start, offset = offset + TRANSACTION.size, offset + TRANSACTION.size + count * step
        if offset > len(record):
            raise CorruptFile(f"transaction {txn} runs past the end of its record")
        yield Transaction(txn, seen_at, db_pages, tuple(
            (PAGE_NUMBER.unpack_from(record, at)[0], record[at + PAGE_NUMBER.size : at + step])
            for at in range(start, offset, step)))


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
