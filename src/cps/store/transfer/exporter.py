"""Exporting a folder with its subfolders, or a whole mailbox, to a new directory.

Layouts (folder names become file names as `filenames.py` describes; nothing is written outside
the destination):

* maildir: the exported folder is the Maildir at the destination and its subfolders are Maildir++
  folders beside it (".Sub.Inner"); a whole mailbox is an empty top Maildir with one Maildir++
  folder per folder (".Inbox", ".Sent Items", ".Inbox.Projects"). File mtimes are internal dates.
* eml: one directory per folder, the exported folder being the destination itself (a whole
  mailbox: one directory per top folder), messages "<uid>.eml" with the internal date as mtime.
* mbox: one mboxrd file per folder, since an mbox cannot hold subfolders: folder A/B of the export
  is "A/B.mbox", the exported folder itself "<its name>.mbox" at the top.

The whole export reads one consistent snapshot of the database. The destination must not exist or
be an empty directory, so an export never mixes with other files; every file is written
atomically and durably (`durable.py`). A write error (a full disk) stops the export with a clear
error and leaves the files written so far.
"""

from __future__ import annotations

import errno
import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...durable import make_folders
from ...errors import StoreError, UsageError
from ..database import MailDatabase
from ..folders import find_folder, list_folders, live_mailbox
from ..models import Folder
from ..names import check_address, check_folder_name
from ..queries import fetch_raw, list_messages
from . import eml, maildir, mbox
from .readers import Format
from .sources import Outgoing, clamp_date, display


@dataclass(frozen=True, slots=True)
class ExportReport:
    mailbox: str
    folder: tuple[str, ...]  # empty for a whole mailbox
    destination: str
    format: str
    folders: int
    messages: int
    exported_bytes: int
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "mailbox": self.mailbox,
            "folder": "/".join(self.folder),
            "destination": self.destination,
            "format": self.format,
            "folders": self.folders,
            "messages": self.messages,
            "exported_bytes": self.exported_bytes,
            "seconds": round(self.seconds, 3),
        }


def export_mail(
    db: MailDatabase, address: str, folder: tuple[str, ...], destination: Path, kind: Format,
    progress: Callable[[str, int, int], None] | None = None,
) -> ExportReport:
    """Write `folder` of mailbox `address` with its subfolders (or, for an empty `folder`, the
    whole mailbox) to `destination` as `kind`; `progress` hears ("messages", written, total)."""
    started = time.monotonic()
    if kind is Format.AUTO:
        raise UsageError("choose an export format", hint="Use maildir, mbox or eml.")
    check_destination(destination)
    address = check_address(address)
    folder = tuple(check_folder_name(name) for name in folder)
    with db.read() as connection:
        selected = _selected_folders(connection, address, folder)
        total = sum(found.messages for found in selected)
        messages = _MessageSource(connection, total, progress or (lambda _stage, _done, _total: None))
        try:
            make_folders(destination)
            if kind is Format.MAILDIR and folder == ():
                maildir.write_folder(destination, (), [])
            for found in selected:
                relative = _relative(found.path, folder, kind)
                _WRITERS[kind](destination, relative, messages.messages(found))
        except OSError as exc:
            raise _write_error(exc, destination) from exc
    return ExportReport(
        mailbox=address, folder=folder, destination=display(destination), format=str(kind),
        folders=len(selected), messages=messages.count, exported_bytes=messages.size,
        seconds=time.monotonic() - started,
    )


def check_destination(destination: Path) -> None:
    """An export writes into a new or empty directory only."""
    if destination.is_symlink() or (destination.exists() and not destination.is_dir()):
        raise UsageError(
            f"{display(destination)} exists and is not a directory",
            hint="Export into a new directory or an empty one.",
        )
    if destination.is_dir() and any(destination.iterdir()):
        raise UsageError(
            f"{display(destination)} is not empty",
            hint="Export into a new directory or an empty one, so no existing file is touched.",
        )


def _selected_folders(
    connection: sqlite3.Connection, address: str, folder: tuple[str, ...]
) -> list[Folder]:
    mailbox = live_mailbox(connection, address)
    if folder:
        find_folder(connection, mailbox, folder)  # a clear error when it does not exist
    return [f for f in list_folders(connection, mailbox) if f.path[: len(folder)] == folder]


def _relative(path: tuple[str, ...], root: tuple[str, ...], kind: Format) -> tuple[str, ...]:
    """A folder's path in the export: below the exported folder, or for mbox (where every folder
    is a named file) from the exported folder's name on."""
    keep = len(root) - 1 if kind is Format.MBOX and root else len(root)
    return path[keep:]


class _MessageSource:
    """Streams a folder's messages from the database, counting them for the report and the
    progress."""

    def __init__(self, connection: sqlite3.Connection, total: int,
                 progress: Callable[[str, int, int], None]) -> None:
        self.connection = connection
        self.count = 0
        self.size = 0
        self.total = total
        self.progress = progress

    def messages(self, folder: Folder) -> Iterator[Outgoing]:
        for message in list_messages(self.connection, folder.id):
            raw = fetch_raw(self.connection, message.id)
            self.count += 1
            self.size += len(raw)
            # Clamped as on import: file times and From_ lines cannot hold every integer.
            date = clamp_date(message.internal_date)
            yield Outgoing(message.id, message.uid, date, message.flags, raw)
            self.progress("messages", self.count, self.total)  # the writer has taken it


_WRITERS = {
    Format.MAILDIR: maildir.write_folder,
    Format.EML: eml.write_folder,
    Format.MBOX: mbox.write_folder,
}


def _write_error(exc: OSError, destination: Path) -> StoreError:
    where = display(exc.filename) if exc.filename else display(destination)
    full = exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
    return StoreError(
        f"export failed writing {where}: {exc.strerror}",
        hint=(
            f"{'Free disk space, then remove' if full else 'Remove'} the incomplete export in "
            f"{display(destination)} and run the export again."
        ),
    )
