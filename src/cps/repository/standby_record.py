"""The standby record: the small file beside a standby copy that says what the copy holds.

A standby copy is a database file kept by replaying a repository's log into it (restore/standby.py).
Its record, `<copy>.standby`, uses the repository's container (format.py: header, one record,
footer with a SHA-256), kind "standby", never encrypted or compressed: it holds no mail, and the
copy's host may not have the passphrase when the record is read (`cps standby status`). The record
is JSON (docs/repository-format.md, "The standby record"), replaced atomically.

It lives here, below capture and restore, because both read it: restore keeps it, and capture
reads a promoted copy's record to start the promoted database's first chain with the promotion as
its reason (capture/protector.py).

`state` says what the file beside it is:

- `replaying`: exactly the database at transaction `txn` of chain `chain`;
- `applying`: on its way from `txn` to `dirty_through`, some pages written: a mix of those states,
  which only a replay to at least `dirty_through` makes whole again;
- `seeding`: a new copy, complete at `<copy>.seeding` (or already moved into place), holds
  transaction `txn` of chain `chain`;
- `promoted`: a normal writable database since `promoted_at`; replay has stopped for good.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..durable import atomic_write
from ..errors import CorruptFile
from .codec import decode_json, decode_record, encode_record
from .crypto import sealing
from .format import encode_file, read_file

REPLAYING = "replaying"
APPLYING = "applying"
SEEDING = "seeding"
PROMOTED = "promoted"
STATES = (REPLAYING, APPLYING, SEEDING, PROMOTED)

_PLAIN = sealing(0, None)


@dataclass(frozen=True, slots=True)
class StandbyRecord:
    db_id: str
    repository: str  # where the log comes from: a folder or s3://bucket/prefix (no secret)
    lag_ms: int  # replay holds back transactions committed less than this long ago
    created_at: int
    state: str
    chain: int
    txn: int  # the copy is the database at this transaction ...
    txn_time: int | None  # ... which committed at this time
    db_pages: int
    page_size: int
    replayed_at: int  # the end of the last round that read the repository
    repository_txn: int = 0  # the latest transaction the repository held then ...
    repository_time: int | None = None  # ... and when it committed
    dirty_through: int = 0  # APPLYING: pages of transactions up to this one may be written
    seeds: int = 0  # how many times the copy was restored whole (the first time included)
    seed_reason: str = ""  # why it was, the last time
    problem: str = ""  # what kept the last round from reaching its target ("" when nothing did)
    promoted_at: int | None = None


def beside(copy: Path, suffix: str) -> Path:
    """A file kept beside the copy: its name is the copy's and `suffix`."""
    return copy.with_name(copy.name + suffix)


def record_path(copy: Path) -> Path:
    return beside(copy, ".standby")


def write_record(copy: Path, record: StandbyRecord) -> None:
    if record.state not in STATES:
        raise ValueError(f"unknown standby state {record.state!r}")
    atomic_write(record_path(copy), b"".join(encode_file("standby", _PLAIN,
                                                         [encode_record(record)])))


def read_record(copy: Path) -> StandbyRecord:
    """The record beside `copy`; FileNotFoundError when there is none, CorruptFile when it is
    damaged or not a standby record."""
    path = record_path(copy)
    checked = read_file(path, "standby")
    if len(checked.spans) != 1:
        raise CorruptFile(f"{path} holds {len(checked.spans)} records, not 1", path=str(path))
    what = str(path)
    record = decode_record(StandbyRecord, decode_json(checked.record(0, _PLAIN), what), what)
    if record.state not in STATES:
        raise CorruptFile(f"{path} has an unknown state {record.state!r}", path=str(path))
    return record
