"""Importing mail from a Maildir, an mbox file (or a tree of them) or .eml files into a folder.

The flow is one way: a reader (`maildir.py`, `mbox.py`, `eml.py`) yields what it finds in the
source; `prepare` parses each message outside any transaction; the writer here places them.

Idempotent and resumable: every imported message gets a row in the `imports` table (the import's
target folder, the message's source key, the new message id) in the transaction that stores the
message. A run first reads the keys already recorded for the target folder and skips those
messages, so running an import again imports nothing twice, and an import that was killed resumes
where its last commit ended. Messages are committed in batches (`BATCH_MESSAGES` messages or
`BATCH_BYTES` bytes): a kill loses at most the batch in flight, never a part of a message.

A bad entry never stops an import: it is counted as rejected and reported with its place and the
reason, and the import goes on. Only a problem with the target (no such mailbox, a database
error) or a source that does not exist ends it.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...errors import NotFound, UsageError
from ..connection import transaction
from ..database import MailDatabase
from ..folders import create_mailbox, ensure_folder, live_mailbox
from ..messages import place, store_body
from ..models import Folder, Mailbox
from ..names import check_address, check_folder_name
from .mbox import Quoting
from .prepare import Note, PreparedEvent, Ready, Severity, Skipped, parse, prepare
from .readers import Format, detect_format, read_source, source_size
from .sources import Candidate, FolderMark, Progress, Rejected, display
from .worker import prepared_in_worker

logger = logging.getLogger(__name__)

BATCH_MESSAGES = 500
BATCH_BYTES = 16 << 20


@dataclass(frozen=True, slots=True)
class Problem:
    """Something in the source that was not imported ("error") or was imported with a remark
    ("warning"), and where it is: a path, with "#N" for the N-th message of an mbox file."""

    where: str
    reason: str
    severity: Severity


@dataclass(frozen=True, slots=True)
class ImportReport:
    """What an import did. `found` = `imported` + `skipped_already_imported` + `rejected`."""

    source: str
    format: str
    mailbox: str
    folder: tuple[str, ...]
    found: int
    imported: int
    skipped_already_imported: int
    rejected: int
    imported_bytes: int
    seconds: float
    problems: tuple[Problem, ...]

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "format": self.format,
            "mailbox": self.mailbox,
            "folder": "/".join(self.folder),
            "found": self.found,
            "imported": self.imported,
            "skipped_already_imported": self.skipped_already_imported,
            "rejected": self.rejected,
            "imported_bytes": self.imported_bytes,
            "seconds": round(self.seconds, 3),
            "problems": [
                {"where": p.where, "reason": p.reason, "severity": p.severity}
                for p in self.problems
            ],
        }


def import_mail(
    db: MailDatabase,
    source: Path,
    address: str,
    folder: tuple[str, ...] = ("Inbox",),
    *,
    kind: Format = Format.AUTO,
    quoting: Quoting = Quoting.MBOXRD,
    create_mailbox: bool = False,
    parallel: bool = False,
    batch_messages: int = BATCH_MESSAGES,
    progress: Progress | None = None,
) -> ImportReport:
    """Import the mail in `source` into `folder` (created if missing) of the mailbox `address`.
    With `parallel`, messages are parsed in a worker process while this one writes. `progress`
    is told the bytes of the source done so far and its total size, message by message (an
    estimate: mbox separators and unreadable files are not counted as done)."""
    started = time.monotonic()
    if not source.exists() and not source.is_symlink():
        raise UsageError(f"{display(source)} does not exist", hint="Give a Maildir, mbox or .eml path.")
    if kind is Format.AUTO:
        kind = detect_format(source)
    if not folder:
        raise UsageError("no target folder given", hint="Name a folder, for example Inbox.")
    target = tuple(check_folder_name(name) for name in folder)
    mailbox, root = _open_target(db.connection, check_address(address), target, create_mailbox)
    done = {row[0] for row in db.connection.execute(
        "SELECT source FROM imports WHERE folder_id = ?", (root.id,))}
    events = (
        prepared_in_worker(source, kind, quoting, done)
        if parallel
        else prepare(read_source(source, kind, quoting), done)
    )
    writer = _Writer(db.connection, mailbox, root, batch_messages)
    tracker = _SourceProgress(progress, source_size(source, kind)) if progress else None
    for event in events:
        for ready in parse(event) if isinstance(event, Candidate) else (event,):
            writer.take(ready)
            if tracker:
                tracker.advance(ready)
    writer.flush()
    tally = writer.tally
    return ImportReport(
        source=display(source), format=str(kind), mailbox=mailbox.address, folder=root.path,
        found=tally.imported + tally.skipped + tally.rejected, imported=tally.imported,
        skipped_already_imported=tally.skipped, rejected=tally.rejected,
        imported_bytes=tally.imported_bytes, seconds=time.monotonic() - started,
        problems=tuple(tally.problems),
    )


def _open_target(
    connection: sqlite3.Connection, address: str, folder: tuple[str, ...], create: bool
) -> tuple[Mailbox, Folder]:
    with transaction(connection) as c:
        try:
            mailbox = live_mailbox(c, address)
        except NotFound as exc:
            if not create:
                raise NotFound(exc.message, hint=(exc.hint + " " if exc.hint else "") + (
                    "To import into a new mailbox, pass --create-mailbox.")) from exc
            mailbox = create_mailbox(c, address, "")
        return mailbox, ensure_folder(c, mailbox, folder)


class _SourceProgress:
    """Counts the bytes of the source that messages taken stand for, and reports them."""

    def __init__(self, report: Progress, total: int) -> None:
        self.report = report
        self.total = total
        self.done = 0

    def advance(self, event: PreparedEvent) -> None:
        if isinstance(event, Ready):
            self.done += len(event.message.raw)
        elif isinstance(event, Skipped):
            self.done += event.size
        else:
            return
        self.report(self.done, self.total)


@dataclass(slots=True)
class _Tally:
    imported: int = 0
    skipped: int = 0
    rejected: int = 0
    imported_bytes: int = 0
    problems: list[Problem] = field(default_factory=list)


class _Writer:
    """Places prepared messages in batches, each batch one transaction with its `imports` rows."""

    def __init__(
        self, connection: sqlite3.Connection, mailbox: Mailbox, root: Folder, batch_messages: int
    ) -> None:
        self.connection = connection
        self.mailbox = mailbox
        self.root = root
        self.batch_messages = batch_messages
        self.tally = _Tally()
        self._messages: list[Ready] = []
        self._bytes = 0
        self._folders: list[tuple[str, ...]] = []
        self._folder_ids: dict[tuple[str, ...], int] = {(): root.id}

    def take(self, event: PreparedEvent) -> None:
        if isinstance(event, Ready):
            self._messages.append(event)
            self._bytes += len(event.message.raw)
            if len(self._messages) >= self.batch_messages or self._bytes >= BATCH_BYTES:
                self.flush()
        elif isinstance(event, FolderMark):
            self._folders.append(event.folder)
        elif isinstance(event, Skipped):
            self.tally.skipped += 1
        elif isinstance(event, Rejected):
            self.tally.rejected += 1
            self.tally.problems.append(Problem(event.where, event.reason, "error"))
        elif isinstance(event, Note):
            self.tally.problems.append(Problem(event.where, event.reason, event.severity))

    def flush(self) -> None:
        if not self._messages and not self._folders:
            return
        with transaction(self.connection) as c:
            for path in self._folders:
                self._folder_id(c, path)
            claimed = [ready for ready in self._messages if self._claim(c, ready.key)]
            # All bodies first, then all placements: place() runs an UPDATE ... RETURNING, which
            # opens a savepoint, and FTS5 flushes its pending index data at every savepoint.
            # Interleaved, that is one flush per message (the writer took 60% longer).
            bodies = [store_body(c, ready.message) for ready in claimed]
            for ready, body_id in zip(claimed, bodies, strict=True):
                folder_id = self._folder_id(c, ready.folder)
                message_id, _uid = place(c, folder_id, body_id, ready.internal_date, ready.flags)
                c.execute(
                    "UPDATE imports SET message_id = ? WHERE folder_id = ? AND source = ?",
                    (message_id, self.root.id, ready.key),
                )
        imported = len(claimed)
        skipped = len(self._messages) - imported
        size = sum(len(ready.message.raw) for ready in claimed)
        logger.debug("import: batch committed", extra={"messages": imported, "bytes": size})
        self.tally.imported += imported
        self.tally.skipped += skipped
        self.tally.imported_bytes += size
        self._messages, self._folders, self._bytes = [], [], 0

    def _claim(self, connection: sqlite3.Connection, key: str) -> bool:
        """Record the key as imported; False if a concurrent run of this import recorded it."""
        return bool(connection.execute(
            "INSERT OR IGNORE INTO imports(folder_id, source) VALUES (?, ?)", (self.root.id, key)
        ).rowcount)

    def _folder_id(self, connection: sqlite3.Connection, path: tuple[str, ...]) -> int:
        if path not in self._folder_ids:
            folder = ensure_folder(connection, self.mailbox, self.root.path + path)
            self._folder_ids[path] = folder.id
        return self._folder_ids[path]
