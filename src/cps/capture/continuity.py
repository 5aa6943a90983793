"""Proving continuity by content, when the WAL cannot prove it.

SQLite checkpoints the WAL into the database and deletes it when the last connection to the
database closes. A protector stopped before the application's last connection closed finds no WAL
when it starts again: the WAL cannot say whether anything changed meanwhile. The database itself
can: when its file holds exactly the state of the last captured transaction, page for page (each
page's id equal to the repository's id of that page in that state), nothing changed, and the chain
goes on with no gap. Anything else (one page different, a different size) starts a new chain.

The file is read under a pinned snapshot taken while the WAL held no frame: SQLite never
backfills into the file while a reader reads the file alone, so the file stays as it is however
many transactions are committed meanwhile (they wait in the WAL, and are captured after it).
For a database that keeps a commit clock (commit_clock.py), a transaction that changed nothing
else still changed the clock, so "the same content" is "no transaction committed".
"""

from __future__ import annotations

import logging
from pathlib import Path

from ..errors import CaptureError, CorruptFile, RepositoryError, UnsupportedFormat
from ..repository import PAGE_ID_SIZE, Chain, FullRef, Repository, SegmentRef
from ..repository.standby_record import PROMOTED, read_record
from .full_backup import READ_CHUNK_PAGES, state_after_log
from .sqlite_db import DatabaseFile

logger = logging.getLogger(__name__)


def file_is_state(repo: Repository, db_id: str, full: FullRef, log: tuple[SegmentRef, ...],
                  last_txn: int, db: DatabaseFile, page_size: int) -> bool:
    """Whether the database file holds exactly the state after `last_txn` (the full backup
    `full` and the log after it). False, never an error, when the repository cannot tell."""
    try:
        previous = repo.read_full(db_id, full)
        state = state_after_log(repo, db_id, previous, list(log), last_txn)
    except (RepositoryError, CaptureError):
        return False
    if previous.page_size != page_size or db.size() != state.db_pages * page_size:
        return False
    for first in range(0, state.db_pages, READ_CHUNK_PAGES):
        count = min(READ_CHUNK_PAGES, state.db_pages - first)
        chunk = db.read(first * page_size, count * page_size)
        for index in range(count):
            page = chunk[index * page_size : (index + 1) * page_size]
            at = (first + index) * PAGE_ID_SIZE
            if repo.page_id(page) != state.page_ids[at : at + PAGE_ID_SIZE]:
                return False
    return True


def promotion_reason(db_path: Path, db_id: str, chain: Chain | None) -> str | None:
    """Why the next chain starts, when the database is a standby copy of `db_id` promoted after
    `chain` began (its record beside it says so: repository/standby_record.py); None otherwise.
    A promoted copy never goes on with the chain, even one it matches page for page: the primary
    it stands in for may have committed more that was never captured, so the history forks here,
    and the timeline should show where."""
    try:
        record = read_record(db_path)
    except FileNotFoundError:
        return None
    except (CorruptFile, UnsupportedFormat) as exc:
        logger.warning("the standby record beside %s cannot be read (%s): protected as any "
                       "other database", db_path, exc.message)
        return None
    if record.state != PROMOTED or record.db_id != db_id or record.promoted_at is None:
        return None
    if chain is not None and record.promoted_at <= chain.started_at:
        return None  # promoted before the chain began: this chain is the promoted copy's own
    return (f"a standby copy was promoted at transaction {record.txn} of chain {record.chain} "
            f"and is protected from {db_path.resolve()}")
