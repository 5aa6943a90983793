"""Opening a mail database file and running short, durable write transactions on it.

Every write is one `BEGIN IMMEDIATE ... COMMIT` under `synchronous=FULL`, so a commit that returns is
on disk, and a process killed mid-transaction leaves nothing of it behind. Writers from several
processes queue on SQLite's write lock with a busy timeout; a writer that waits longer than that gets
`StoreBusy` rather than a hang.
"""

from __future__ import annotations

import sqlite3
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

from ..errors import NotAStore, StoreBusy, StoreError
from .schema import APPLICATION_ID, CLOCK_DDL, DDL, SCHEMA_VERSION

BUSY_TIMEOUT_SECONDS = 30.0


def create_database(path: Path) -> sqlite3.Connection:
    """Create a new, empty mail database at `path` in WAL mode; the file must not exist."""
    if path.exists():
        raise StoreError(
            f"{path} already exists",
            hint="Choose another path, or open the existing database instead.",
        )
    if not path.parent.is_dir():
        raise StoreError(f"folder {path.parent} does not exist", hint="Create the folder first.")
    connection = _connect(path, readonly=False, busy_timeout=BUSY_TIMEOUT_SECONDS)
    try:
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute(f"PRAGMA application_id={APPLICATION_ID}")
        with transaction(connection):
            for statement in DDL.split(";"):
                if statement.strip():
                    connection.execute(statement)
            now = int(time.time())
            connection.executemany(
                "INSERT INTO meta(key, value) VALUES (?, ?)",
                [
                    ("database_id", uuid.uuid4().hex),
                    ("created_at", str(now)),
                    ("next_uidvalidity", str(now)),
                ],
            )
            connection.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
    except BaseException:
        connection.close()
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        raise
    return connection


def open_database(
    path: Path, *, readonly: bool = False, busy_timeout: float = BUSY_TIMEOUT_SECONDS
) -> sqlite3.Connection:
    """Open an existing mail database, checking that it is one and that this version can read it."""
    if not path.is_file():
        raise NotAStore(
            f"no mail database at {path}",
            hint=f"Create one with: cps store create {path}",
        )
    connection = _connect(path, readonly=readonly, busy_timeout=busy_timeout)
    try:
        application_id = connection.execute("PRAGMA application_id").fetchone()[0]
        version = connection.execute("PRAGMA user_version").fetchone()[0]
    except sqlite3.DatabaseError as exc:
        connection.close()
        raise NotAStore(f"{path} is not a mail database: {exc}") from exc
    if application_id != APPLICATION_ID:
        connection.close()
        raise NotAStore(
            f"{path} is not a CPS mail database (application id {application_id:#x})",
            hint="Check the path; CPS mail databases are created with 'cps store create'.",
        )
    if version > SCHEMA_VERSION:
        connection.close()
        raise NotAStore(
            f"{path} has schema version {version}, newer than this CPS understands "
            f"({SCHEMA_VERSION})",
            hint="Upgrade CPS to open this database.",
        )
    if version < SCHEMA_VERSION and not readonly:
        _migrate(connection)
    return connection


def _migrate(connection: sqlite3.Connection) -> None:
    """Schema 1 to 2: the commit clock (one transaction; a reader of either version reads both)."""
    with transaction(connection, stamped=False):
        if connection.execute("PRAGMA user_version").fetchone()[0] < 2:
            for statement in CLOCK_DDL.split(";"):
                if statement.strip():
                    connection.execute(statement)
            connection.execute(f"PRAGMA user_version={SCHEMA_VERSION}")


@contextmanager
def transaction(connection: sqlite3.Connection, *, stamped: bool = True
                ) -> Iterator[sqlite3.Connection]:
    """One write transaction: all of it commits durably, or none of it does. Its last write sets
    the commit clock (schema.CLOCK_DDL) to the time it commits."""
    try:
        connection.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as exc:
        raise _translate(exc) from exc
    try:
        yield connection
        if stamped:
            # In microseconds, strictly increasing: SQLite leaves a page unwritten when a row is
            # rewritten with the same bytes, and a transaction that does not write the clock is
            # one the clock does not date. One more than before keeps it moving through two
            # commits in one tick or a clock stepped back, and at a microsecond a step it never
            # runs ahead of the time under any real stream of commits.
            connection.execute("UPDATE cps_commit_clock SET committed_at = "
                               "max(committed_at + 1, ?) WHERE id = 1", (time.time_ns() // 1000,))
        connection.execute("COMMIT")
    except BaseException as exc:
        if connection.in_transaction:
            connection.execute("ROLLBACK")
        if isinstance(exc, sqlite3.OperationalError):
            raise _translate(exc) from exc
        raise


@contextmanager
def snapshot(connection: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """A read transaction: every query inside sees the same committed state."""
    connection.execute("BEGIN")
    try:
        yield connection
    finally:
        connection.execute("COMMIT")


def _connect(path: Path, *, readonly: bool, busy_timeout: float) -> sqlite3.Connection:
    target = f"file:{quote(str(path.resolve()))}?mode=ro" if readonly else str(path)
    connection = sqlite3.connect(
        target, uri=readonly, isolation_level=None, timeout=busy_timeout, check_same_thread=False
    )
    try:
        connection.execute("PRAGMA synchronous=FULL")
        connection.execute("PRAGMA foreign_keys=ON")
    except sqlite3.DatabaseError as exc:
        connection.close()
        raise NotAStore(f"cannot open {path} as a mail database: {exc}") from exc
    return connection


def _translate(exc: sqlite3.OperationalError) -> StoreError:
    text = str(exc)
    if "locked" in text or "busy" in text:
        return StoreBusy(
            "the mail database stayed locked by another writer past the busy timeout",
            hint="Another process is holding a long write transaction; retry when it finishes.",
        )
    if "disk is full" in text or "disk I/O" in text:
        return StoreError(
            f"the mail database could not be written: {text}",
            hint="Free disk space; the transaction was rolled back and nothing was stored.",
        )
    return StoreError(f"mail database error: {text}")
