"""Importing mail from a Maildir, an mbox file (or a tree of them) or .eml files into a folder.

The flow is one way: a reader (`maildir.py`, `mbox.py`, `eml.py`) yields what it finds in the
source; `prepare` parses each message outside any transaction, in this process or in worker
processes (`worker.py`); the writer here stores them in source order through the store's one write
path, `MailDatabase.import_batch`, which fills the full-text index in the same transaction.

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
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...errors import UsageError
from ..database import ImportItem, MailDatabase
from ..models import Folder, Mailbox
from ..names import check_address, check_folder_name
from .mbox import Quoting
from .prepare import Note, PreparedEvent, Ready, Severity, Skipped, prepare
from .readers import Format, detect_format, read_source, source_size
from .sources import FolderMark, Rejected, display
from .worker import parsed_in_workers

logger = logging.getLogger(__name__)

BATCH_MESSAGES = 500
BATCH_BYTES = 16 << 20
# Messages between two reports to the progress callback.
PROGRESS_EVERY = 64
# Told how far an import is: bytes of the source done, its total size, messages done.
ImportProgress = Callable[[int, int, int], None]


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
    workers: int = 0,
    batch_messages: int = BATCH_MESSAGES,
    progress: ImportProgress | None = None,
) -> ImportReport:
    """Import the mail in `source` into `folder` (created if missing) of the mailbox `address`.
    With `workers` > 0, that many processes parse the messages while this one writes; with 0, this
    process does both. `progress` is told the bytes of the source done so far, its total size and
    the messages imported, every `PROGRESS_EVERY` messages and at the end (the bytes are an
    estimate: mbox separators and unreadable files are not counted as done)."""
    started = time.monotonic()
    if not source.exists() and not source.is_symlink():
        raise UsageError(f"{display(source)} does not exist", hint="Give a Maildir, mbox or .eml path.")
    if kind is Format.AUTO:
        kind = detect_format(source)
    if not folder:
        raise UsageError("no target folder given", hint="Name a folder, for example Inbox.")
    target = tuple(check_folder_name(name) for name in folder)
    mailbox, root = db.import_target(check_address(address), target, create_mailbox=create_mailbox)
    done = db.imported_sources(root)
    events = (
        parsed_in_workers(source, kind, quoting, done, workers)
        if workers > 0
        else prepare(read_source(source, kind, quoting), done)
    )
    writer = _Writer(db, mailbox, root, batch_messages)
    tracker = _SourceProgress(progress, source_size(source, kind)) if progress else None
    for event in events:
        writer.take(event)
        if tracker:
            tracker.advance(event)
    writer.flush()
    if tracker:
        tracker.report()
    tally = writer.tally
    return ImportReport(
        source=display(source), format=str(kind), mailbox=mailbox.address, folder=root.path,
        found=tally.imported + tally.skipped + tally.rejected, imported=tally.imported,
        skipped_already_imported=tally.skipped, rejected=tally.rejected,
        imported_bytes=tally.imported_bytes, seconds=time.monotonic() - started,
        problems=tuple(tally.problems),
    )


class _SourceProgress:
    """Counts the bytes of the source that the messages taken stand for, and reports them."""

    def __init__(self, report: ImportProgress, total: int) -> None:
        self._report = report
        self.total = total
        self.done = 0
        self.messages = 0

    def advance(self, event: PreparedEvent) -> None:
        if isinstance(event, Ready):
            self.done += len(event.message.raw)
        elif isinstance(event, Skipped):
            self.done += event.size
        else:
            return
        self.messages += 1
        if self.messages % PROGRESS_EVERY == 0:
            self.report()

    def report(self) -> None:
        self._report(self.done, self.total, self.messages)


@dataclass(slots=True)
class _Tally:
    imported: int = 0
    skipped: int = 0
    rejected: int = 0
    imported_bytes: int = 0
    problems: list[Problem] = field(default_factory=list)


class _Writer:
    """Stores prepared messages in batches, each batch one transaction (`MailDatabase.import_batch`)
    with its `imports` rows."""

    def __init__(self, db: MailDatabase, mailbox: Mailbox, root: Folder, batch_messages: int) -> None:
        self.db = db
        self.mailbox = mailbox
        self.root = root
        self.batch_messages = batch_messages
        self.tally = _Tally()
        self._items: list[ImportItem] = []
        self._bytes = 0
        self._folders: list[tuple[str, ...]] = []

    def take(self, event: PreparedEvent) -> None:
        if isinstance(event, Ready):
            self._items.append(ImportItem(
                event.key, event.folder, event.message, event.internal_date, event.flags))
            self._bytes += len(event.message.raw)
            if len(self._items) >= self.batch_messages or self._bytes >= BATCH_BYTES:
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
        if not self._items and not self._folders:
            return
        stored = self.db.import_batch(self.mailbox, self.root, self._folders, self._items)
        size = sum(len(item.message.raw) for item in stored)
        logger.debug("import: batch committed", extra={"messages": len(stored), "bytes": size})
        self.tally.imported += len(stored)
        self.tally.skipped += len(self._items) - len(stored)
        self.tally.imported_bytes += size
        self._items, self._folders, self._bytes = [], [], 0
