"""What a repository holds, as records: databases, chains, full backups, log segments, recovery
points. Times are milliseconds since the epoch, UTC. A transaction number (`txn`) counts the
committed transactions of one database as captured, from 1, and keeps counting across chains."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

PAGE_ID_SIZE = 32


@dataclass(frozen=True, slots=True)
class DatabaseInfo:
    db_id: str  # the name a repository knows the database by
    source_path: str  # where it was protected from, for people; never used to find it
    page_size: int
    added_at: int


@dataclass(frozen=True, slots=True)
class Chain:
    """An unbroken run of captured transactions, starting with a full backup. A new chain starts
    when continuity with the previous one cannot be proven; `reason` says why, in plain words."""

    chain: int
    started_at: int
    first_txn: int
    reason: str


@dataclass(frozen=True, slots=True)
class WalPosition:
    """A place in the database's WAL: the generation (checkpoint sequence and salts), the last
    frame read and the cumulative checksum after it."""

    checkpoint_seq: int
    salt1: int
    salt2: int
    frame: int
    checksum: tuple[int, int]


@dataclass(frozen=True, slots=True)
class Transaction:
    txn: int
    seen_at: int  # when capture first saw it committed
    db_pages: int  # the database's size in pages after it
    pages: tuple[tuple[int, bytes], ...]  # (page number, page image) in log order


@dataclass(frozen=True, slots=True)
class Segment:
    """Consecutive transactions of one chain, and the WAL positions before and after them."""

    chain: int
    page_size: int
    start: WalPosition
    end: WalPosition
    transactions: tuple[Transaction, ...]

    @property
    def first_txn(self) -> int:
        return self.transactions[0].txn

    @property
    def last_txn(self) -> int:
        return self.transactions[-1].txn


@dataclass(frozen=True, slots=True)
class SegmentRef:
    """A segment as its file name describes it, without reading it."""

    chain: int
    first_txn: int
    last_txn: int
    first_seen: int
    last_seen: int


@dataclass(frozen=True, slots=True)
class FullBackup:
    chain: int
    txn: int  # the state after this transaction
    taken_at: int
    page_size: int
    position: WalPosition  # where capture stood in the WAL when the image was taken
    page_ids: bytes  # the content addresses of pages 1, 2, ..., 32 bytes each, back to back

    @property
    def pages(self) -> int:
        return len(self.page_ids) // PAGE_ID_SIZE

    def page_id(self, number: int) -> bytes:
        """The content address of page `number` (from 1)."""
        start = (number - 1) * PAGE_ID_SIZE
        return self.page_ids[start : start + PAGE_ID_SIZE]

    def ids(self) -> Iterator[bytes]:
        for start in range(0, len(self.page_ids), PAGE_ID_SIZE):
            yield self.page_ids[start : start + PAGE_ID_SIZE]


@dataclass(frozen=True, slots=True)
class FullRef:
    chain: int
    txn: int
    taken_at: int


@dataclass(frozen=True, slots=True)
class RecoveryPoint:
    name: str
    chain: int
    txn: int
    created_at: int
    scheduled: bool
