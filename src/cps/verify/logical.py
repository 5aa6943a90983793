"""Logical checks of a mail database: the mail the SQLite file holds, against the store's rules
(docs/store.md). Every table is read whole, `NOT INDEXED`, so that a damaged index can neither hide
a row nor invent one; the keys of mailboxes, folders, messages and bodies are held in memory (tens
of bytes a message), the bodies' bytes are streamed once.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace

from .findings import Finding, Place


@dataclass(frozen=True, slots=True)
class FolderRow:
    mailbox_id: int
    parent_id: int | None
    name: str
    uidnext: int
    uidvalidity: int


@dataclass(frozen=True, slots=True)
class MessageRow:
    id: int
    folder_id: int
    uid: int
    body_id: int


@dataclass(frozen=True, slots=True)
class BodyRow:
    sha256: bytes
    size: int
    header_id: str


class StoreMap:
    """The keys of everything in one snapshot, to check against and to name findings by."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self.mailboxes: dict[int, str] = dict(connection.execute(
            "SELECT id, address FROM mailboxes NOT INDEXED"))
        self.folders = {row[0]: FolderRow(*row[1:]) for row in connection.execute(
            "SELECT id, mailbox_id, parent_id, name, uidnext, uidvalidity FROM folders NOT INDEXED")}
        self.messages = [MessageRow(*row) for row in connection.execute(
            "SELECT id, folder_id, uid, body_id FROM messages NOT INDEXED ORDER BY id")]
        self.bodies = {row[0]: BodyRow(bytes(row[1]), row[2], row[3]) for row in connection.execute(
            "SELECT id, sha256, size, message_id FROM bodies NOT INDEXED")}
        self.users: dict[int, list[MessageRow]] = defaultdict(list)  # messages by body
        for message in self.messages:
            self.users[message.body_id].append(message)

    def path(self, folder_id: int) -> str:
        """A folder's path as far as its parents can be followed: a missing parent or a loop
        shows as "…/" at the front."""
        names: list[str] = []
        seen: set[int] = set()
        current: int | None = folder_id
        while current is not None:
            folder = self.folders.get(current)
            if folder is None or current in seen:
                names.append("…")
                break
            seen.add(current)
            names.append(folder.name)
            current = folder.parent_id
        return "/".join(reversed(names))

    def at_folder(self, folder_id: int) -> Place:
        """A folder, with its mailbox."""
        folder = self.folders.get(folder_id)
        if folder is None:
            return Place(folder_id=folder_id)
        return Place(mailbox_id=folder.mailbox_id, mailbox=self.mailboxes.get(folder.mailbox_id),
                     folder_id=folder_id, folder=self.path(folder_id))

    def at_message(self, message: MessageRow) -> Place:
        """A message, with its folder, mailbox and body."""
        body = self.bodies.get(message.body_id)
        return replace(self.at_folder(message.folder_id), message_id=message.id,
                       uid=message.uid, header_id=body.header_id if body else None,
                       body_id=message.body_id)


def check_folders(store: StoreMap) -> Iterator[Finding]:
    for folder_id, folder in store.folders.items():
        if folder.mailbox_id not in store.mailboxes:
            yield Finding("folder-mailbox-missing", f"its mailbox {folder.mailbox_id} is gone",
                          store.at_folder(folder_id))
        parent = store.folders.get(folder.parent_id) if folder.parent_id is not None else None
        if folder.parent_id is not None and (parent is None
                                             or parent.mailbox_id != folder.mailbox_id):
            whose = "gone" if parent is None else f"in mailbox {parent.mailbox_id}"
            yield Finding("folder-parent-missing", f"its parent folder {folder.parent_id} is {whose}",
                          store.at_folder(folder_id))
    for cycle in _cycles(store):
        names = ", ".join(f"{store.folders[f].name} ({f})" for f in cycle)
        yield Finding("folder-cycle", f"the folder is its own ancestor, through {names}",
                      store.at_folder(min(cycle)))


def _cycles(store: StoreMap) -> Iterator[list[int]]:
    """Each loop of parent links once, as the folders on it."""
    done: set[int] = set()
    for start in store.folders:
        walk: list[int] = []
        current: int | None = start
        while current is not None and current in store.folders and current not in done:
            if current in walk:
                yield walk[walk.index(current):]
                break
            walk.append(current)
            current = store.folders[current].parent_id
        done.update(walk)


def check_messages(store: StoreMap) -> Iterator[Finding]:
    first: dict[tuple[int, int], MessageRow] = {}
    highest: dict[int, int] = {}
    for message in store.messages:
        if message.folder_id not in store.folders:
            yield Finding("message-folder-missing", f"its folder {message.folder_id} is gone",
                          store.at_message(message))
            continue
        key = (message.folder_id, message.uid)
        if key in first:
            yield Finding("duplicate-uid", f"UID {message.uid} is message {first[key].id}'s too",
                          store.at_message(message))
        first.setdefault(key, message)
        highest[message.folder_id] = max(highest.get(message.folder_id, 0), message.uid)
    for folder_id, uid in highest.items():
        uidnext = store.folders[folder_id].uidnext
        if uid >= uidnext:
            yield Finding("uid-not-below-uidnext",
                          f"UIDNEXT is {uidnext} but UID {uid} is in use: the next message "
                          "would take a UID already given", store.at_folder(folder_id))


def check_uidvalidity(connection: sqlite3.Connection, store: StoreMap) -> Iterator[Finding]:
    row = connection.execute("SELECT value FROM meta WHERE key = 'next_uidvalidity'").fetchone()
    highest = max((f.uidvalidity for f in store.folders.values()), default=0)
    if row is None or int(row[0]) <= highest:
        shown = "missing" if row is None else row[0]
        yield Finding("next-uidvalidity-behind",
                      f"the next UIDVALIDITY is {shown} but a folder has {highest}: a new folder "
                      "could reuse it")


def check_bodies(connection: sqlite3.Connection, store: StoreMap) -> Iterator[Finding]:
    """Every message's body is there, its bytes hash to its SHA-256 and have its size."""
    for message in store.messages:
        if message.body_id not in store.bodies:
            yield Finding("missing-body", f"its body {message.body_id} is gone",
                          store.at_message(message))
    with_bytes: set[int] = set()
    for body_id, raw in connection.execute("SELECT body_id, raw FROM body_raw NOT INDEXED"):
        body = store.bodies.get(body_id)
        if body is None:
            continue
        with_bytes.add(body_id)
        raw = bytes(raw)
        if hashlib.sha256(raw).digest() != body.sha256:
            yield from _per_user(store, body_id, "body-hash-mismatch",
                                 f"the bytes of body {body_id} no longer hash to its SHA-256 "
                                 f"{body.sha256.hex()}")
        elif len(raw) != body.size:
            yield Finding("body-size-wrong", f"body {body_id} has {len(raw)} bytes; its size "
                          f"says {body.size}", Place(body_id=body_id))
    for body_id in store.bodies.keys() - with_bytes:
        yield from _per_user(store, body_id, "missing-body",
                             f"the bytes of body {body_id} are gone")
    for body_id in store.bodies.keys() - store.users.keys():
        yield Finding("unused-body", f"no message uses body {body_id}", Place(body_id=body_id))


def _per_user(store: StoreMap, body_id: int, kind: str, detail: str) -> Iterator[Finding]:
    """A damaged body, once for each message that shows it (a body no message uses is reported
    as unused)."""
    for message in store.users.get(body_id, ()):
        yield Finding(kind, detail, store.at_message(message))


def check_text_index(connection: sqlite3.Connection, store: StoreMap) -> Iterator[Finding]:
    """Every body has one full-text entry (its rowid is the body's id), and nothing else has."""
    indexed = {rowid for (rowid,) in connection.execute("SELECT rowid FROM body_text")}
    for body_id in sorted(store.bodies.keys() - indexed):
        users = store.users.get(body_id)
        place = store.at_message(users[0]) if users else Place(body_id=body_id)
        yield Finding("text-index-missing", f"body {body_id} is not in the full-text index: "
                      "search cannot find it", place)
    for rowid in sorted(indexed - store.bodies.keys()):
        yield Finding("text-index-extra", f"the full-text index has an entry for body {rowid}, "
                      "which is gone", Place(body_id=rowid))


LogicalCheck = Callable[[sqlite3.Connection, StoreMap], Iterator[Finding]]
# Each check with what it reads, for the finding when the database cannot be read there.
CHECKS: tuple[tuple[str, LogicalCheck], ...] = (
    ("the folder trees", lambda _c, store: check_folders(store)),
    ("the messages' UIDs", lambda _c, store: check_messages(store)),
    ("the UIDVALIDITY counter", check_uidvalidity),
    ("the message bodies", check_bodies),
    ("the full-text index", check_text_index),
)
