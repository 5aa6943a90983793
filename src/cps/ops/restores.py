"""Restoring a database: planned against what the repository proves, under the reader lock."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from ..repository import Repository
from ..restore import RestoreResult, Target, resolve, restore
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
