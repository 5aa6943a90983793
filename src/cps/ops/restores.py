"""Restoring a database: planned against what the repository proves, under the reader lock."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..repository import Repository
from ..restore import RestoreResult, Target, format_ms, resolve, restore
from ..restore.apply import Progress


@dataclass(frozen=True, slots=True)
class RestoreDone:
    db_id: str
    target: Target
    result: RestoreResult
    seconds: float

    @property
    def exact(self) -> bool:
        """The database at the target itself (not a best-effort state before it)."""
        return self.result.damaged is None

    def to_json(self) -> dict[str, Any]:
        """What `cps restore --json` prints and a restore job of the API results in."""
        result = self.result
        return {
            "output": str(result.output), "db_id": self.db_id, "chain": result.chain,
            "txn": result.txn, "txn_time": format_ms(result.txn_time) if result.txn_time else None,
            "pages": result.pages, "seconds": round(self.seconds, 3), "damaged": result.damaged,
            "exact": self.exact, "target": self.target.describe(),
            "passed_over": list(result.passed_over),
        }


def check_restorable(repo: Repository, db_id: str, target: Target, *,
                     best_effort: bool = False) -> None:
    """Refuse now what restore_database would refuse if it ran now (a target the repository does
    not cover, or cannot restore exactly without `best_effort`), for a caller that runs the
    restore itself later, as a job."""
    with repo.reader_lock():
        resolve(repo, db_id, target, best_effort=best_effort)


def restore_database(repo: Repository, db_id: str, target: Target, output: Path, *,
                     force: bool = False, best_effort: bool = False,
                     progress: Progress | None = None) -> RestoreDone:
    """Write `db_id` as it was at `target` to `output` (restore.restore), or refuse."""
    started = time.monotonic()
    with repo.reader_lock():
        _catalog, plan = resolve(repo, db_id, target, best_effort=best_effort)
        result = restore(repo, plan, output, force=force, best_effort=best_effort,
                         progress=progress)
    return RestoreDone(db_id, target, result, time.monotonic() - started)
