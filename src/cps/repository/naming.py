"""Every file name in a repository, built and parsed only here, in format_*/parse_* pairs.

Names are storage keys, `/`-separated paths relative to the repository (storage/base.py), the
same in a folder and in a bucket. Numbers are fixed-width lowercase hex, so `ls` order is log
order:

    config, key                                   repository settings and the sealed key
    packs/<2 hex>/<64 hex>.pack                   page packs, named by the SHA-256 of the file
    databases/<db>/database                       what the repository knows of one database
    databases/<db>/status                         the protector's latest progress report
    databases/<db>/points/<txn 16>-<name 16>.point
    databases/<db>/chains/<chain 8>/chain
    databases/<db>/chains/<chain 8>/fulls/<txn 16>-<taken 12>.full
    databases/<db>/chains/<chain 8>/segments/<first 16>-<last 16>-<first time 12>-<last time 12>.seg
    databases/<db>/pruned/<pruned at 12>-<random 8>.pruned
    databases/<db>/drills/<started at 12>-<random 8>.drill

Changing a pattern here changes the on-disk format: bump FORMAT_VERSION in format.py.
"""

from __future__ import annotations

import hashlib
import re
import secrets

from ..errors import UsageError
from .model import FullRef, SegmentRef

_DB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_FULL = re.compile(r"([0-9a-f]{16})-([0-9a-f]{12})\.full")
_SEGMENT = re.compile(r"([0-9a-f]{16})-([0-9a-f]{16})-([0-9a-f]{12})-([0-9a-f]{12})\.seg")
_CHAIN = re.compile(r"[0-9a-f]{8}")
_PACK = re.compile(r"[0-9a-f]{64}\.pack")
_POINT = re.compile(r"([0-9a-f]{16})-[0-9a-f]{16}\.point")
_PRUNED = re.compile(r"[0-9a-f]{12}-[0-9a-f]{8}\.pruned")
_DRILL = re.compile(r"[0-9a-f]{12}-[0-9a-f]{8}\.drill")


def check_db_id(db_id: str) -> str:
    if not _DB_ID.fullmatch(db_id):
        raise UsageError(
            f"invalid database id {db_id!r}",
            hint="Use 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit.",
        )
    return db_id


DATABASES = "databases"
PACKS = "packs"


def database_dir(db_id: str) -> str:
    return f"{DATABASES}/{check_db_id(db_id)}"


def chain_dir(db_id: str, chain: int) -> str:
    return f"{database_dir(db_id)}/chains/{chain:08x}"


def parse_chain_dir(name: str) -> int | None:
    return int(name, 16) if _CHAIN.fullmatch(name) else None


_DB_PATH = rf"{DATABASES}/{_DB_ID.pattern}"
_KEY_KINDS = [(re.compile(pattern), kind) for pattern, kind in (
    (r"config", "config"),
    (r"key", "key"),
    (rf"{PACKS}/([0-9a-f]{{2}})/\1[0-9a-f]{{62}}\.pack", "pack"),
    (rf"{_DB_PATH}/database", "database"),
    (rf"{_DB_PATH}/status", "status"),
    (rf"{_DB_PATH}/points/{_POINT.pattern}", "point"),
    (rf"{_DB_PATH}/pruned/{_PRUNED.pattern}", "pruned"),
    (rf"{_DB_PATH}/drills/{_DRILL.pattern}", "drill"),
    (rf"{_DB_PATH}/chains/{_CHAIN.pattern}/chain", "chain"),
    (rf"{_DB_PATH}/chains/{_CHAIN.pattern}/fulls/{_FULL.pattern}", "full"),
    (rf"{_DB_PATH}/chains/{_CHAIN.pattern}/segments/{_SEGMENT.pattern}", "segment"),
)]


def key_kind(key: str) -> str | None:
    """The kind of container file (format.KIND_MAGIC) a key names, None for a key that is no
    repository file (locks, requests, temporary files, anything else)."""
    return next((kind for pattern, kind in _KEY_KINDS if pattern.fullmatch(key)), None)


def format_full(ref: FullRef) -> str:
    return f"{ref.txn:016x}-{ref.taken_at:012x}.full"


def parse_full(chain: int, name: str) -> FullRef | None:
    match = _FULL.fullmatch(name)
    if not match:
        return None
    return FullRef(chain, int(match[1], 16), int(match[2], 16))


def format_segment(ref: SegmentRef) -> str:
    return (f"{ref.first_txn:016x}-{ref.last_txn:016x}-{ref.first_time:012x}-"
            f"{ref.last_time:012x}.seg")


def parse_segment(chain: int, name: str) -> SegmentRef | None:
    match = _SEGMENT.fullmatch(name)
    if not match:
        return None
    first, last, first_time, last_time = (int(g, 16) for g in match.groups())
    return SegmentRef(chain, first, last, first_time, last_time)


def format_point(txn: int, name: str) -> str:
    return f"{txn:016x}-{hashlib.sha256(name.encode()).hexdigest()[:16]}.point"


def parse_point(name: str) -> int | None:
    """The transaction a point file's name gives (its name is only hashed into it)."""
    match = _POINT.fullmatch(name)
    return int(match[1], 16) if match else None


def format_pruned(pruned_at: int) -> str:
    return f"{pruned_at:012x}-{secrets.token_hex(4)}.pruned"


def is_pruned(name: str) -> bool:
    return _PRUNED.fullmatch(name) is not None


def drills_dir(db_id: str) -> str:
    return f"{database_dir(db_id)}/drills"


def format_drill(started_at: int) -> str:
    return f"{started_at:012x}-{secrets.token_hex(4)}.drill"


def is_drill(name: str) -> bool:
    return _DRILL.fullmatch(name) is not None


def pack_key(pack_id: bytes) -> str:
    text = pack_id.hex()
    return f"{PACKS}/{text[:2]}/{text}.pack"


def parse_pack(name: str) -> bytes | None:
    return bytes.fromhex(name[:64]) if _PACK.fullmatch(name) else None
