"""Making a point in time browsable: the database at that transaction, opened read-only straight
from the repository.

`open_snapshot` plans the point the way `cps restore` does (`cps.restore.resolve`), builds
the database image of that plan (`images.PointImage`: the log up to the exact transaction applied
into a temporary file, the full backup's pages read from the packs when SQLite asks for them), and
serves it to SQLite through the read-only VFS (`vfs.py`). The result is an ordinary `sqlite3`
connection wrapped in `MailDatabase`, so every question asked of the past is answered by the
store's own API and its full-text index as it was, without restoring the database first.

While a snapshot is open it holds the repository's reader lock, so `cps prune` cannot delete a
pack it may still read; close it (or leave its `with` block) to let prune run.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import ExitStack, closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from ..errors import NotAStore
from ..repository import Repository
from ..restore import Target, resolve
from ..store import MailDatabase
from .images import PointImage
from .points import point_label
from .vfs import ServedImage, serve


@dataclass(frozen=True, slots=True)
class Snapshot:
    """One database as it was at one transaction, open read-only. Close it when done; inside its
    `with` block, a SQLite error caused by a repository file that cannot be read is raised as the
    CPSError that says which file and what to do."""

    database: MailDatabase
    db_id: str
    txn: int
    txn_time: int | None  # ms since the epoch, when the transaction committed
    label: str  # names the point for people and for recovered folders: "txn 1234" or a point name
    seconds: float  # to open it
    served: ServedImage
    resources: ExitStack  # the reader lock, the image and its serving, released by close

    def close(self) -> None:
        try:
            self.database.close()
        finally:
            self.resources.close()

    def __enter__(self) -> Snapshot:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
        if exc is not None:
            _raise_read_failure(self.served, exc)

    @contextmanager
    def reading(self) -> Iterator[MailDatabase]:
        """The database, for a snapshot kept open across several uses (a server's): inside the
        block, a SQLite error caused by a repository file that cannot be read is raised as the
        CPSError naming the file, as in the snapshot's own `with` block, which would close it."""
        try:
            yield self.database
        except BaseException as exc:
            _raise_read_failure(self.served, exc)
            raise

    def describe(self) -> dict[str, object]:
        return {"db_id": self.db_id, "txn": self.txn, "txn_time": self.txn_time,
                "label": self.label, "seconds": round(self.seconds, 3)}


def open_snapshot(repo: Repository, db_id: str, target: Target) -> Snapshot:
    """The database `db_id` of `repo` at `target`. TargetNotCovered when the repository cannot
    restore that point; a CPSError naming the file when one it needs cannot be read."""
    started = time.monotonic()
    resources = ExitStack()
    try:
        resources.enter_context(repo.reader_lock())
        _catalog, plan = resolve(repo, db_id, target)
        image = resources.enter_context(closing(PointImage.build(repo, plan)))
        served = resources.enter_context(closing(serve(image)))
        database = _open_mail_database(served, db_id, image.txn)
    except BaseException:
        resources.close()
        raise
    return Snapshot(database, db_id, image.txn, image.txn_time, point_label(target, image.txn),
                    time.monotonic() - started, served, resources)


def _open_mail_database(served: ServedImage, db_id: str, txn: int) -> MailDatabase:
    connection = served.connect()
    database = MailDatabase(Path(f"{db_id}@{txn}"), connection)
    try:
        _ = database.database_id  # a table of the store's own: is this a mail database?
    except sqlite3.DatabaseError as exc:
        connection.close()
        _raise_read_failure(served, exc)
        raise NotAStore(f"database {db_id} at transaction {txn} is not a CPS mail database: {exc}",
                        hint="Granular recovery reads mail databases; restore other databases "
                             "with 'cps restore'.") from exc
    return database


def _raise_read_failure(served: ServedImage, exc: BaseException) -> None:
    """The repository error behind a SQLite error, when a read of the image failed."""
    caused_by_sqlite = isinstance(exc, sqlite3.Error) or isinstance(exc.__cause__, sqlite3.Error)
    failure, served.failure = served.failure, None
    if failure is not None and caused_by_sqlite and failure is not exc:
        raise failure from exc
