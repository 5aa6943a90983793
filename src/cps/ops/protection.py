"""Protecting one database: the protector lock held for the whole run, a repository in a bucket
written through its upload spool, the events reported."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

from ..capture import ProtectOptions, Protector
from ..repository import Repository
from ..repository.storage import spooled_uploads

Events = Callable[[str, dict[str, object]], None]


def protect(db: Path, repo: Repository, db_id: str, options: ProtectOptions,
            stop: threading.Event, on_event: Events) -> int:
    """Protect `db` into `repo` as `db_id` until `stop` is set; the last transaction captured.
    Reports "starting", "ready" (a chain is being captured), every protector event, and
    "stopped". RepositoryLocked when another process protects `db_id` already."""
    with repo.protector_lock(db_id), spooled_uploads(repo.storage, options.spool_limit) as uploads:
        protector = Protector(db, repo, db_id, options, on_event, uploads)
        on_event("starting", {"db": str(db), "repo": repo.describe(), "db_id": db_id})
        protector.run(stop, on_ready=lambda: on_event("ready", {"txn": protector.last_txn}))
        on_event("stopped", {"txn": protector.last_txn})
        return protector.last_txn
