"""The workload's operation log: one JSON object per line for every transaction it committed.

The log is an oracle: replaying its records in order on an empty model of the mail database gives
the database's content (mailboxes, folders, and per folder each message's UID, flags and SHA-256),
provided the database was empty when the run began and no other process wrote to it. It also tells
which messages were added, moved, re-flagged or removed, and which folders were created, renamed or
deleted, between any two times. `docs/workload.md` is the same table with worked examples.

Each line is written and flushed right after its transaction committed, so a reader tailing the file
sees every committed operation; the file is fsynced when the run ends. Lines are UTF-8 JSON objects
with keys in the order below. A folder path is a JSON array of folder names from the mailbox root
(["Inbox", "Projekte"]); flags are spelt as IMAP spells them ("\\Seen", "$Label1"); `sha256` values
are the lowercase hex SHA-256 of the raw message bytes; `message_ids` are the store's message ids,
which stay the same across moves (an id freed by an expunge may be given to a later message).

Every record::

    seq           1, 2, 3 ... in the order written (setup, operations and error records alike)
    op            mailbox_create | deliver | read | flag | move | delete | expunge |
                  folder_create | folder_rename | folder_delete
    committed_at  time.time() right after the commit, seconds since the epoch (a float)
    mailbox       the address of the mailbox acted in

and, per operation (lists named alike are parallel: the n-th entries belong together)::

    mailbox_create  mailbox_id, folders (the standard folders it was created with)
    deliver         source ("generated", or the file's path relative to the corpus folder),
                    sha256, size (bytes), flags (set at delivery), message_ids,
                    deliveries: [{mailbox, folder, uid, message_id}] one per recipient in
                    recipient order; `mailbox` is the first recipient
    read            folder, message_ids, uids, sha256, add (["\\Seen"]), remove ([])
    flag            folder, message_ids, uids, sha256, add, remove
    move            from, to, message_ids, from_uids, uids (in `to`), sha256
    delete          from, to (the mailbox's Deleted Items), message_ids, from_uids, uids, sha256
    expunge         folder (Deleted Items), message_ids, uids, sha256 (all as they were)
    folder_create   folder, folder_id, uidvalidity
    folder_rename   from, to, folder_id (subfolders move along; UIDs and UIDVALIDITY are kept)
    folder_delete   folder, folder_id, folders (the folder and every subfolder, all deleted),
                    message_ids, message_folders, uids, sha256 (every message removed with them)

`add` and `remove` are the flags the operation set and cleared; a flag added that was already set
stays set. An operation that failed in a way the workload cannot prevent is written instead as::

    seq, op, mailbox, failed_at (time.time()), error (the CPS error code), message

and changed nothing: `store-busy` after the retries are used up, `not-found` or `exists` when another
writer changed a target between the choice and the transaction, `invalid-mail` for a corpus file the
store refuses. The fields that depend on the wall clock are `committed_at`, `failed_at` and
`uidvalidity`; with the same seed and starting database everything else is the same on every run.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import TextIO

from ...durable import fsync_folder, make_folders
from ...errors import UsageError


class OperationLog:
    """An append-only stream of records, read while it grows: a file `durable.atomic_write` cannot
    make, so this class flushes each line and fsyncs the file and its folder on close instead."""

    def __init__(self, path: Path) -> None:
        self.path = path
        make_folders(path.parent)
        try:
            self._file: TextIO = path.open("x", encoding="utf-8")
        except FileExistsError:
            raise UsageError(
                f"log file {path} already exists",
                hint="Give a new file name; the workload never writes over an existing log.",
            ) from None

    def write(self, record: Mapping[str, object]) -> None:
        self._file.write(json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n")
        self._file.flush()

    def close(self) -> None:
        if self._file.closed:
            return
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        fsync_folder(self.path.parent)

    def __enter__(self) -> OperationLog:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
