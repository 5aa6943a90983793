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
class ChainEnd:
    """How far the chain before a new one was proven when the new one started: its last
    transaction, and the time before which every commit of it had been captured (the protector's
    last word on it, from its status). Recorded in the new chain's file, so the old chain's
    coverage outlives the status file that said it."""

    chain: int
    last_txn: int
    covered_until: int


@dataclass(frozen=True, slots=True)
class Chain:
    """An unbroken run of captured transactions, starting with a full backup. A new chain starts
    when continuity with the previous one cannot be proven; `reason` says why, in plain words.
    `source_path` and `previous` are empty in chains written before format 3."""

    chain: int
    started_at: int
    first_txn: int
    reason: str
    source_path: str = ""  # the database file this chain was captured from
    previous: ChainEnd | None = None


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
    committed_at: int = 0  # the database's own commit clock, when it keeps one (0: it does not)

    @property
    def time(self) -> int:
        """When it committed: the database's commit clock when it keeps one, otherwise when
        capture first saw it. A restore to a time applies the transactions up to it."""
        return self.committed_at or self.seen_at


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
    first_time: int  # Transaction.time of the first and of the last transaction
    last_time: int


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
    keep: bool = False  # prune keeps it, and what it needs, whatever the retention policy


@dataclass(frozen=True, slots=True)
class ProtectorStatus:
    """The protector's latest progress report (the `status` file): advisory, for the timeline and
    for restores by time. Fields older files do not have take their defaults."""

    state: str  # "protecting" or "stopped"
    updated_at: int
    chain: int | None
    last_txn: int  # the last transaction captured (durable or not yet)
    source_path: str
    synced_through: int = 0  # every commit before this time (ms) is durable in the repository
    position: WalPosition | None = None
    lag_p50: float | None = None
    lag_p99: float | None = None
    durable_txn: int | None = None  # the last transaction durable in the repository
    error: str | None = None  # why the repository cannot be written, while it cannot
    # A repository in a bucket is written through a local spool (storage/spool.py): what is
    # durable above may still wait there. None and 0 for a repository in a folder.
    uploaded_txn: int | None = None  # the last transaction whose log is in the bucket
    uploaded_through: int = 0  # every commit before this time (ms) is in the bucket
    upload_waiting_files: int = 0
    upload_waiting_bytes: int = 0
    upload_lag: float | None = None  # seconds the oldest file waiting for the bucket has waited
    upload_error: str | None = None  # why uploads fail, while they do
    upload_failed_at: int | None = None  # when the last outage of uploads began (ms), this run
    upload_recovered_at: int | None = None  # when it ended (ms); None while it lasts


@dataclass(frozen=True, slots=True)
class PrunedRange:
    """Transactions of one chain whose log or full backup `cps prune` deleted (a whole chain, when
    its chain file went too), with their times and when they were deleted."""

    chain: int
    first_txn: int
    last_txn: int
    first_time: int
    last_time: int
    pruned_at: int


@dataclass(frozen=True, slots=True)
class DrilledPoint:
    """One point a restore drill restored and checked: what it aimed at, why it was chosen, the
    transaction it restored, and what went wrong (None: it restored and verified clean)."""

    target: str  # the target in one word (restore.Target.spec): "txn:42", "point:NAME", "latest"
    chosen: str  # "random", "recovery point" or "latest"
    txn: int | None  # the transaction restored, None when the restore refused
    problem: str | None = None


@dataclass(frozen=True, slots=True)
class DrillRecord:
    """A restore drill of one database (`cps drill`): when it ran, whether every point passed,
    and each point. Written once per drill, under `databases/<db>/drills/`."""

    drill_id: str
    started_at: int
    ended_at: int
    seed: int
    passed: bool
    points: tuple[DrilledPoint, ...]

    @property
    def failed(self) -> tuple[DrilledPoint, ...]:
        return tuple(p for p in self.points if p.problem is not None)


@dataclass(frozen=True, slots=True)
class ChainFolder:
    """A chain's folder as listed: its number, and its chain file when it can be read (`problem`
    says why not: missing or damaged)."""

    number: int
    chain: Chain | None
    problem: str | None


@dataclass(frozen=True, slots=True)
class UnreadableFile:
    """An advisory file that could not be read: the reader goes on without it."""

    path: str
    txn: int | None  # what its name says, when it names a transaction
    error: str
