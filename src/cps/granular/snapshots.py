"""Making a point in time browsable: a restored copy of the database at that transaction, cached.

A point is materialized by restoring the database at exactly that transaction (`cps.restore`) into
`<cache>/<repository id>/<database id>/<txn as 16 hex digits>.db`, then opened read-only with
`MailDatabase.open`, so every question asked of the past is answered by the store's own API and
its full-text index as it was. A transaction's content never changes, so a cached copy is reused
for as long as it exists; at most `keep` copies are kept, the least recently used going first.

Writing is safe against crashes and against a second process materializing the same point:
`restore` writes `<temp>.partial`, checks it and renames it to a temporary name of this process;
that is then linked to the final name, which fails harmlessly when another process got there first.
A half-made file therefore never carries a cache name. A small `<txn>.json` beside each copy keeps
the transaction's time, written before the copy is published.

A time is turned into a transaction before looking in the cache, the way `restore` applies it: the
last transaction of the plan first seen at or before the time. Segments wholly before the time are
judged by their file names; only a segment straddling the time is read. (This assumes capture's
stamps do not go backwards within one segment, which a wall clock stepped back by NTP inside one
sync interval could break; the transaction restored is then still exact, and is what is cached.)

The cache holds decrypted mail: its folders are created readable by their owner only.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from ..durable import atomic_write, fsync_folder, make_folders
from ..errors import RepositoryError, UsageError
from ..repository import Repository
from ..restore import RestorePlan, Target, load_catalog, plan_restore, restore
from ..store import MailDatabase

CACHE_ENV = "CPS_CACHE_DIR"
DEFAULT_KEEP = 8
# Temporary files older than this belong to a process that died: safe to remove.
STALE_SECONDS = 3600.0
_SIBLINGS = ("", "-wal", "-shm")
_SAFE_ID = re.compile(r"[0-9A-Za-z_.-]{1,64}")


def default_cache_root() -> Path:
    """$CPS_CACHE_DIR, else ~/.cache/cps."""
    configured = os.environ.get(CACHE_ENV)
    return Path(configured) if configured else Path.home() / ".cache" / "cps"


@dataclass(frozen=True, slots=True)
class Snapshot:
    """One database as it was at one transaction, open read-only. Close it when done."""

    database: MailDatabase
    db_id: str
    txn: int
    txn_time: int | None  # ms since the epoch, when capture first saw the transaction
    label: str  # names the point for people and for recovered folders: "txn 1234" or a point name
    path: Path
    materialized: bool  # restored just now (False: found in the cache)
    seconds: float  # to find or restore it

    def close(self) -> None:
        self.database.close()

    def __enter__(self) -> Snapshot:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def describe(self) -> dict[str, object]:
        return {"db_id": self.db_id, "txn": self.txn, "txn_time": self.txn_time,
                "label": self.label, "materialized": self.materialized,
                "seconds": round(self.seconds, 3)}


class SnapshotCache:
    """Restored copies of databases at transactions, under `root`, at most `keep` of them."""

    def __init__(self, root: Path | None = None, keep: int = DEFAULT_KEEP) -> None:
        if keep < 1:
            raise UsageError("the cache must keep at least one point", hint="Give 1 or more.")
        self.root = root if root is not None else default_cache_root()
        self.keep = keep

    def open(self, repo: Repository, db_id: str, target: Target) -> Snapshot:
        """The database `db_id` of `repo` at `target`, restored now or found in the cache.
        TargetNotCovered when the repository cannot restore that point."""
        started = time.monotonic()
        with repo.reader_lock():
            catalog = load_catalog(repo, db_id)  # a clear error for a database it does not hold
            folder = self._folder(repo, db_id)
            plan = plan_restore(catalog, target, synced_through(repo, db_id))
            path = self._entry(folder, planned_txn(repo, plan))
            materialized = not path.exists()
            if materialized:
                path = self._materialize(repo, plan, folder)
        os.utime(path)  # recency, for eviction
        self.evict(keep_also=path)
        txn = int(path.stem, 16)
        label = str(target.value) if target.kind == "point" else f"txn {txn}"
        database = MailDatabase.open(path, readonly=True)
        return Snapshot(database, db_id, txn, _read_time(path), label, path, materialized,
                        time.monotonic() - started)

    def entries(self) -> list[Path]:
        """Every cached copy, most recently used first."""
        found = [(p, _mtime(p)) for p in self.root.glob("*/*/*.db") if _is_entry(p)]
        return [p for p, _ in sorted(found, key=lambda item: item[1], reverse=True)]

    def evict(self, keep_also: Path | None = None) -> list[Path]:
        """Remove the least recently used copies beyond `keep`, and leftovers of dead processes."""
        for leftover in self.root.glob("*/*/.*"):
            if time.time() - _mtime(leftover) > STALE_SECONDS:
                leftover.unlink(missing_ok=True)
        removed = [p for p in self.entries()[self.keep:] if p != keep_also]
        for path in removed:
            for doomed in [Path(f"{path}{suffix}") for suffix in _SIBLINGS]:
                doomed.unlink(missing_ok=True)
            path.with_suffix(".json").unlink(missing_ok=True)
        return removed

    def _folder(self, repo: Repository, db_id: str) -> Path:
        repository_id = str(repo.config.get("repository_id", ""))
        if not _SAFE_ID.fullmatch(repository_id) or repository_id.strip(".") == "":
            raise RepositoryError(f"the repository's config has an unusable id {repository_id!r}",
                                  hint="Check the repository with 'cps verify'.")
        if not _SAFE_ID.fullmatch(db_id) or db_id.strip(".") == "":
            raise UsageError(f"invalid database id {db_id!r}")
        folder = self.root / repository_id / db_id
        if not folder.is_dir():
            make_folders(folder)
            for private in (folder.parent, folder):
                private.chmod(0o700)
        return folder

    @staticmethod
    def _entry(folder: Path, txn: int) -> Path:
        return folder / f"{txn:016x}.db"

    def _materialize(self, repo: Repository, plan: RestorePlan, folder: Path) -> Path:
        temporary = folder / f".{uuid.uuid4().hex}.db"
        try:
            result = restore(repo, plan, temporary)
            path = self._entry(folder, result.txn)
            atomic_write(path.with_suffix(".json"), json.dumps(
                {"txn": result.txn, "txn_time": result.txn_time, "chain": result.chain}).encode())
            # Fails when another process published the same point first: the same bytes.
            with contextlib.suppress(FileExistsError):
                os.link(temporary, path)
            fsync_folder(folder)
        finally:
            temporary.unlink(missing_ok=True)
        return path


def synced_through(repo: Repository, db_id: str) -> int | None:
    """While a protector runs, the time up to which it has captured every commit (as `cps
    restore` uses it), so a time after the last commit is still covered."""
    status = repo.status(db_id)
    if status and status.get("state") == "protecting":
        return int(status["updated_at"])
    return None


def planned_txn(repo: Repository, plan: RestorePlan) -> int:
    """The transaction `restore(plan)` ends at (see the module docstring)."""
    if plan.stop_time is None:
        return plan.last_txn
    txn = plan.full.txn
    for ref in plan.segments:
        if ref.last_txn <= txn:
            continue
        if ref.last_txn <= plan.last_txn and ref.last_seen <= plan.stop_time:
            txn = ref.last_txn
            continue
        for transaction in repo.read_segment(plan.db_id, ref).transactions:
            if transaction.txn <= txn:
                continue
            if transaction.txn > plan.last_txn or transaction.seen_at > plan.stop_time:
                break
            txn = transaction.txn
    return txn


def _is_entry(path: Path) -> bool:
    return not path.name.startswith(".") and re.fullmatch(r"[0-9a-f]{16}", path.stem) is not None


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:  # removed meanwhile by another process's eviction
        return float("-inf")


def _read_time(path: Path) -> int | None:
    try:
        value = json.loads(path.with_suffix(".json").read_text()).get("txn_time")
    except (OSError, ValueError, AttributeError):
        return None
    return value if isinstance(value, int) else None
