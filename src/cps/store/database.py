"""`MailDatabase`: the Python API of one mail database, the surface every other part of CPS uses.

Each method that changes something is one short write transaction; `deliver_group` writes several
deliveries in one, each in its own savepoint, for intake's group commit. Mailboxes are named by
address, folders by their path of names (a tuple, or "A/B" text), messages by their id (stable for
the life of the message in this database, across moves) or by folder and UID. An instance is one
connection: use one per thread; any number of processes may open the same file at once.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from ..errors import InvalidMessage, NotFound, StoreError
from . import folders as _folders
from . import imports as _imports
from . import messages as _messages
from . import queries as _queries
from . import repair as _repair
from .connection import (
    BUSY_TIMEOUT_SECONDS,
    create_database,
    open_database,
    snapshot,
    transaction,
)
from .models import Delivery, Folder, Mailbox, Message, Stats
from .names import split_path
from .parse import Attachment, Envelope, content_hash, parse_envelope

FolderPath = tuple[str, ...] | str


@dataclass(frozen=True, slots=True)
class AppendItem:
    """A message to add with `MailDatabase.append`. `envelope`, when given, is what a mail database
    already derived from these exact bytes (`MailDatabase.envelope`): the message is then stored
    without being parsed again, which is what makes copying mail between databases fast."""

    folder: FolderPath
    raw: bytes
    internal_date: int
    flags: tuple[str, ...] = ()
    envelope: Envelope | None = None


@dataclass(frozen=True, slots=True)
class ImportItem:
    """A message of an import's source for `MailDatabase.import_batch`, parsed already (outside
    the write transaction), with the source key that marks it imported."""

    key: str
    folder: tuple[str, ...]  # below the import's target folder
    message: _messages.ParsedMessage
    internal_date: int
    flags: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class GroupItem:
    """A message for `MailDatabase.deliver_group`: its bytes, the recipients whose Inboxes get it,
    and, when given, `parse_envelope(raw)` already made by the caller."""

    raw: bytes
    recipients: tuple[str, ...]
    envelope: Envelope | None = None


def check_message(raw: bytes) -> None:
    """Refuse what the store never stores, whatever else it holds: an empty message."""
    if not raw.strip():
        raise InvalidMessage("empty message", hint="A message needs at least one header line.")


def parse_message(raw: bytes, envelope: Envelope | None = None) -> _messages.ParsedMessage:
    """Parse a raw message for storing (or take the envelope given for it); refuses only an empty
    one."""
    check_message(raw)
    return _messages.ParsedMessage(raw, content_hash(raw), envelope or parse_envelope(raw))


def _parsed_or_refused(item: GroupItem) -> _messages.ParsedMessage | InvalidMessage:
    try:
        return parse_message(item.raw, item.envelope)
    except InvalidMessage as error:
        return error


class MailDatabase:
    def __init__(self, path: Path, connection: sqlite3.Connection) -> None:
        self.path = path
        self.connection = connection

    @classmethod
    def create(cls, path: str | Path) -> MailDatabase:
        path = Path(path)
        return cls(path, create_database(path))

    @classmethod
    def open(
        cls, path: str | Path, *, readonly: bool = False, busy_timeout: float = BUSY_TIMEOUT_SECONDS
    ) -> MailDatabase:
        """Open an existing database. A writer waits up to `busy_timeout` seconds for another
        process's write transaction before giving up with StoreBusy."""
        path = Path(path)
        return cls(path, open_database(path, readonly=readonly, busy_timeout=busy_timeout))

    def close(self) -> None:
        self.connection.close()

    def __enter__(self) -> MailDatabase:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    @property
    def database_id(self) -> str:
        row = self.connection.execute("SELECT value FROM meta WHERE key = 'database_id'").fetchone()
        return str(row[0])

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """A write transaction for several operations that must commit together."""
        with transaction(self.connection) as connection:
            yield connection

    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """A consistent read of several queries. Reads nest: the API's own reading methods called
        inside `with db.read():` see the outer snapshot, so a whole-database walk is one state."""
        if self.connection.in_transaction:
            yield self.connection
            return
        with snapshot(self.connection) as connection:
            yield connection

    @contextmanager
    def repairing(self) -> Iterator[_repair.StoreRepair]:
        """Repairs that lose no mail (`store/repair.py`), in one write transaction."""
        with self.write() as connection:
            yield _repair.StoreRepair(connection)

    def use_wal(self) -> None:
        """Put the database back in WAL mode, the mode `create` gives every mail database."""
        mode = self.connection.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if mode != "wal":
            raise StoreError(f"{self.path} stayed in journal mode {mode}",
                             hint="Another connection holds it; retry when it is closed.")

    def text_index_problem(self) -> str | None:
        """What the full-text index's own check finds wrong with it, or None (it holds the write
        lock while it runs, and writes nothing)."""
        return _repair.text_index_problem(self.connection)

    # Mailboxes

    def create_mailbox(self, address: str, display_name: str = "") -> Mailbox:
        with self.write() as c:
            return _folders.create_mailbox(c, address, display_name)

    def delete_mailbox(self, address: str, *, purge: bool = False) -> None:
        """Mark a mailbox deleted (its address becomes free); `purge` also removes its mail."""
        with self.write() as c:
            _messages.collect_bodies(c, _folders.delete_mailbox(c, address, purge=purge))

    def mailbox(self, address: str) -> Mailbox:
        return _folders.live_mailbox(self.connection, address)

    def mailboxes(self, *, include_deleted: bool = False) -> list[Mailbox]:
        return _folders.list_mailboxes(self.connection, include_deleted=include_deleted)

    # Folders

    def folders(self, address: str) -> list[Folder]:
        with self.read() as c:
            return _folders.list_folders(c, _folders.live_mailbox(c, address))

    def folder(self, address: str, path: FolderPath) -> Folder:
        c = self.connection
        return _folders.find_folder(c, _folders.live_mailbox(c, address), _path(path))

    def create_folder(self, address: str, path: FolderPath, *, parents: bool = False) -> Folder:
        with self.write() as c:
            mailbox = _folders.live_mailbox(c, address)
            return _folders.create_folder(c, mailbox, _path(path), parents=parents)

    def rename_folder(self, address: str, path: FolderPath, new_path: FolderPath) -> Folder:
        with self.write() as c:
            mailbox = _folders.live_mailbox(c, address)
            return _folders.rename_folder(c, mailbox, _path(path), _path(new_path))

    def delete_folder(self, address: str, path: FolderPath) -> None:
        """Delete a folder, its subfolders and every message in them, for good."""
        with self.write() as c:
            mailbox = _folders.live_mailbox(c, address)
            _messages.collect_bodies(c, _folders.delete_folder(c, mailbox, _path(path)))

    # Messages

    def deliver(
        self,
        raw: bytes,
        recipients: Sequence[str],
        *,
        folder: FolderPath | None = None,
        internal_date: int | None = None,
        flags: Iterable[str] = (),
        envelope: Envelope | None = None,
    ) -> list[Delivery]:
        """Deliver one message to every recipient's Inbox (or `folder`), in one transaction:
        all recipients get it, or none does. `envelope`, when given, is `parse_envelope(raw)`
        already made by the caller, and is stored without parsing again."""
        parsed = parse_message(raw, envelope)
        when = int(time.time()) if internal_date is None else internal_date
        with self.write() as c:
            return _place_for(c, parsed, recipients, folder, when, tuple(flags))

    def deliver_group(self, items: Sequence[GroupItem]) -> list[list[Delivery] | Exception]:
        """Deliver several messages, each to its recipients' Inboxes, in one transaction (one
        commit, one fsync) in which each message has its own savepoint: a message that fails (a
        mailbox gone, a write refused) is rolled back alone and its exception is returned in its
        place, while the others commit together. A failure of the transaction itself (the write
        lock not granted in time, the commit refused) raises, and then none is stored."""
        parsed = [_parsed_or_refused(item) for item in items]
        when = int(time.time())
        results: list[list[Delivery] | Exception] = []
        with self.write() as c:
            for item, message in zip(items, parsed, strict=True):
                if isinstance(message, InvalidMessage):
                    results.append(message)
                    continue
                c.execute("SAVEPOINT message")
                try:
                    results.append(_place_for(c, message, item.recipients, None, when, ()))
                except Exception as error:
                    if not c.in_transaction:  # SQLite gave up the whole transaction
                        raise
                    c.execute("ROLLBACK TO message")
                    results.append(error)
                c.execute("RELEASE message")
        return results

    def append(self, address: str, items: Iterable[AppendItem]) -> list[Delivery]:
        """Add messages to folders of one mailbox with their own internal dates and flags, all in
        one transaction; missing folders are created. For restoring and moving mail in bulk."""
        parsed = [(item, parse_message(item.raw, item.envelope)) for item in items]
        deliveries = []
        with self.write() as c:
            mailbox = _folders.live_mailbox(c, address)
            folders: dict[tuple[str, ...], Folder] = {}
            for item, message in parsed:
                path = _path(item.folder)
                if path not in folders:
                    folders[path] = _folders.ensure_folder(c, mailbox, path)
                body_id = _messages.store_body(c, message)
                message_id, uid = _messages.place(
                    c, folders[path].id, body_id, item.internal_date, item.flags)
                deliveries.append(Delivery(message_id, mailbox.address, path, uid))
        return deliveries

    # Imports (the `imports` table, see store/imports.py)

    def import_target(
        self, address: str, path: tuple[str, ...], *, create_mailbox: bool = False
    ) -> tuple[Mailbox, Folder]:
        """The mailbox and folder an import fills, the folder (and with `create_mailbox` the
        mailbox) created if missing."""
        with self.write() as c:
            try:
                mailbox = _folders.live_mailbox(c, address)
            except NotFound as exc:
                if not create_mailbox:
                    raise NotFound(exc.message, hint=(exc.hint + " " if exc.hint else "") + (
                        "To import into a new mailbox, pass --create-mailbox.")) from exc
                mailbox = _folders.create_mailbox(c, address, "")
            return mailbox, _folders.ensure_folder(c, mailbox, path)

    def imported_sources(self, target: Folder) -> set[str]:
        """The source keys of everything imported into `target` so far."""
        return _imports.imported_sources(self.connection, target.id)

    def import_batch(
        self, mailbox: Mailbox, target: Folder, folders: Iterable[tuple[str, ...]],
        items: Sequence[ImportItem],
    ) -> list[ImportItem]:
        """In one write transaction: create `folders` and those of `items` (paths below `target`,
        a folder of `mailbox`) if missing, and store each item whose key `target` has not recorded
        yet, recording it. Returns the items stored; the others were stored by a concurrent run of
        the import."""
        with self.write() as c:
            folder_ids: dict[tuple[str, ...], int] = {(): target.id}

            def folder_id(path: tuple[str, ...]) -> int:
                if path not in folder_ids:
                    folder_ids[path] = _folders.ensure_folder(c, mailbox, target.path + path).id
                return folder_ids[path]

            for path in folders:
                folder_id(path)
            claimed = [item for item in items if _imports.claim(c, target.id, item.key)]
            # All bodies (with their index entries) first, then all placements, so the index
            # inserts run back to back: FTS5 flushes its pending data at any savepoint a statement
            # in between opens (one with RETURNING does), which would make one flush per message.
            bodies = [_messages.store_body(c, item.message) for item in claimed]
            for item, body_id in zip(claimed, bodies, strict=True):
                message_id, _uid = _messages.place(
                    c, folder_id(item.folder), body_id, item.internal_date, item.flags)
                _imports.record_message(c, target.id, item.key, message_id)
        return claimed

    def messages(
        self, address: str, path: FolderPath, *, limit: int | None = None, offset: int = 0
    ) -> list[Message]:
        with self.read() as c:
            folder = _folders.find_folder(c, _folders.live_mailbox(c, address), _path(path))
            return _queries.list_messages(c, folder.id, limit=limit, offset=offset)

    def message(self, message_id: int) -> Message:
        return _queries.get_message(self.connection, message_id)

    def message_by_uid(self, address: str, path: FolderPath, uid: int) -> Message:
        with self.read() as c:
            folder = _folders.find_folder(c, _folders.live_mailbox(c, address), _path(path))
            return _queries.message_by_uid(c, folder.id, uid)

    def fetch_raw(self, message_id: int) -> bytes:
        return _queries.fetch_raw(self.connection, message_id)

    def envelope(self, message_id: int) -> Envelope:
        """What this database derived from a message's bytes when it stored them (header fields,
        attachments, indexed text), read back without parsing; parse defects are not kept."""
        with self.read() as c:
            row = c.execute(
                "SELECT b.id, b.message_id, b.subject, b.from_addr, b.to_addr, b.cc_addr, "
                "b.sent_date, b.in_reply_to, b.refs FROM messages m JOIN bodies b "
                "ON b.id = m.body_id WHERE m.id = ?", (message_id,)).fetchone()
            if row is None:
                raise NotFound(f"no message with id {message_id}")
            body_id, message_header_id, subject, from_, to, cc, date, in_reply_to, refs = row
            attachments = tuple(Attachment(*a) for a in c.execute(
                "SELECT filename, content_type, size FROM attachments WHERE body_id = ? "
                "ORDER BY position", (body_id,)))
            text = c.execute("SELECT text FROM body_text WHERE rowid = ?", (body_id,)).fetchone()
        return Envelope(message_header_id, subject, from_, to, cc, date, in_reply_to, refs,
                        attachments, text[0] if text else "", defects=())

    def attachments(self, message_id: int) -> list[tuple[str, str, int]]:
        """(filename, content type, decoded size) of each attachment, in MIME order."""
        return _queries.attachments_of(self.connection, message_id)

    def folder_of(self, message_id: int) -> Folder:
        c = self.connection
        return _folders.folder_by_id(c, _messages.folder_of(c, message_id))

    def move(self, message_ids: Sequence[int], address: str, path: FolderPath) -> list[int]:
        """Move messages to a folder of `address`; returns their new UIDs."""
        with self.write() as c:
            folder = _folders.find_folder(c, _folders.live_mailbox(c, address), _path(path))
            return _messages.move(c, message_ids, folder.id)

    def copy(self, message_ids: Sequence[int], address: str, path: FolderPath) -> list[int]:
        """Copy messages to a folder of `address`; returns the copies' message ids."""
        with self.write() as c:
            folder = _folders.find_folder(c, _folders.live_mailbox(c, address), _path(path))
            return _messages.copy(c, message_ids, folder.id)

    def set_flags(
        self, message_ids: Sequence[int], *, add: Iterable[str] = (), remove: Iterable[str] = ()
    ) -> None:
        with self.write() as c:
            _messages.change_flags(c, message_ids, add, remove)

    def delete(self, message_ids: Sequence[int]) -> None:
        """Delete as a mail client does: to the mailbox's Deleted Items, or for good from there."""
        with self.write() as c:
            for message_id in message_ids:
                folder = _folders.folder_by_id(c, _messages.folder_of(c, message_id))
                if folder.role == "trash":
                    _messages.expunge(c, [message_id])
                    continue
                mailbox = c.execute(
                    "SELECT address FROM mailboxes WHERE id = ?", (folder.mailbox_id,)).fetchone()
                trash = _folders.role_folder(c, _folders.live_mailbox(c, mailbox[0]), "trash")
                _messages.move(c, [message_id], trash.id)

    def expunge(self, message_ids: Sequence[int]) -> None:
        """Remove messages for good, wherever they are."""
        with self.write() as c:
            _messages.expunge(c, message_ids)

    def search(self, query: _queries.SearchQuery) -> list[Message]:
        with self.read() as c:
            return _queries.search(c, query)

    def stats(self) -> Stats:
        with self.read() as c:
            return _queries.stats(c, self.path)


def _place_for(c: sqlite3.Connection, parsed: _messages.ParsedMessage, recipients: Sequence[str],
               folder: FolderPath | None, when: int, flags: tuple[str, ...]) -> list[Delivery]:
    """Store a message once and place it in each recipient's Inbox (or `folder`)."""
    body_id = _messages.store_body(c, parsed)
    deliveries = []
    for recipient in recipients:
        mailbox = _folders.live_mailbox(c, recipient)
        target = (_folders.role_folder(c, mailbox, "inbox") if folder is None
                  else _folders.find_folder(c, mailbox, _path(folder)))
        message_id, uid = _messages.place(c, target.id, body_id, when, flags)
        deliveries.append(Delivery(message_id, mailbox.address, target.path, uid))
    return deliveries


def _path(path: FolderPath) -> tuple[str, ...]:
    return split_path(path) if isinstance(path, str) else split_path("/".join(path))
