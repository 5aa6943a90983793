"""What changed between two states of a mail database: two points in time, or a point and now.

Identity decides everything, never names:

- a message is its row id AND its body's SHA-256. Ids are stable across moves, but SQLite may
  give the largest id again after that message was expunged, so the same id with other content is
  one message deleted and another added. (The same id with the same content after an expunge and
  a re-delivery in between looks like the same message: nothing tells them apart.)
- a folder is its row id AND its UIDVALIDITY, which the store never hands out twice, so a folder
  deleted and re-created under the same name is one folder deleted and another created.
- a mailbox is its row id (mailbox rows are never reused; deletion marks them).

A message in both states is *moved* when its folder is another folder (a rename of its folder is
not a move), and has *flags changed* when its flags differ; it can be both. A folder in both states
whose path differs was renamed or moved (its subfolders' paths change with it, and each is
reported). Only live mailboxes are read: the mail of a mailbox deleted in between shows as deleted.
With a mailbox filter, only that mailbox's folders are read, so a message moved to another
mailbox shows as deleted from it. Every list is sorted, so the same two states give the same diff.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any

from ..errors import NotFound
from ..store import MailDatabase

FolderKey = tuple[int, int]  # (folder id, uidvalidity)
MessageKey = tuple[int, str]  # (message id, body sha256)


@dataclass(frozen=True, slots=True)
class FolderState:
    id: int
    uidvalidity: int
    mailbox: str
    path: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "uidvalidity": self.uidvalidity, "mailbox": self.mailbox,
                "path": list(self.path)}


@dataclass(frozen=True, slots=True)
class MessageState:
    id: int
    sha256: str
    mailbox: str
    folder: tuple[str, ...]
    folder_key: FolderKey
    uid: int
    flags: frozenset[str]
    subject: str
    message_id: str
    internal_date: int

    def place(self) -> tuple[str, tuple[str, ...], int, int]:
        return self.mailbox, self.folder, self.uid, self.id

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "sha256": self.sha256, "mailbox": self.mailbox,
                "folder": list(self.folder), "uid": self.uid, "flags": sorted(self.flags),
                "subject": self.subject, "message_id": self.message_id,
                "date": self.internal_date}


@dataclass(frozen=True, slots=True)
class MessageChange:
    """One message in both states: moved, re-flagged, or both."""

    before: MessageState
    after: MessageState

    @property
    def added_flags(self) -> list[str]:
        return sorted(self.after.flags - self.before.flags)

    @property
    def removed_flags(self) -> list[str]:
        return sorted(self.before.flags - self.after.flags)

    def as_dict(self) -> dict[str, Any]:
        def where(m: MessageState) -> dict[str, Any]:
            return {"mailbox": m.mailbox, "folder": list(m.folder), "uid": m.uid}
        return {"id": self.after.id, "sha256": self.after.sha256, "subject": self.after.subject,
                "message_id": self.after.message_id, "from": where(self.before),
                "to": where(self.after), "added": self.added_flags,
                "removed": self.removed_flags, "flags": sorted(self.after.flags)}


@dataclass(frozen=True, slots=True)
class FolderChange:
    before: FolderState
    after: FolderState

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.after.id, "uidvalidity": self.after.uidvalidity,
                "mailbox": self.after.mailbox, "from": list(self.before.path),
                "to": list(self.after.path)}


@dataclass(frozen=True, slots=True)
class Diff:
    mailboxes_created: tuple[str, ...] = ()
    mailboxes_deleted: tuple[str, ...] = ()
    folders_created: tuple[FolderState, ...] = ()
    folders_deleted: tuple[FolderState, ...] = ()
    folders_renamed: tuple[FolderChange, ...] = ()
    messages_added: tuple[MessageState, ...] = ()
    messages_deleted: tuple[MessageState, ...] = ()
    messages_moved: tuple[MessageChange, ...] = ()
    flags_changed: tuple[MessageChange, ...] = ()

    @property
    def empty(self) -> bool:
        return not any(self.counts().values())

    def counts(self) -> dict[str, int]:
        return {name: len(getattr(self, name)) for name in self.__slots__}

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"counts": self.counts()}
        for name in self.__slots__:
            data[name] = [item if isinstance(item, str) else item.as_dict()
                          for item in getattr(self, name)]
        return data


@dataclass(slots=True)
class DatabaseState:
    """What a diff compares: live mailboxes, their folders and messages, by identity."""

    mailboxes: dict[int, str] = field(default_factory=dict)
    folders: dict[FolderKey, FolderState] = field(default_factory=dict)
    messages: dict[MessageKey, MessageState] = field(default_factory=dict)
    known_addresses: set[str] = field(default_factory=set)  # deleted mailboxes' too


def read_state(db: MailDatabase, mailbox: str | None = None) -> DatabaseState:
    """One consistent read of `db` (of one mailbox, when given)."""
    state = DatabaseState()
    with db.read():
        state.known_addresses = {m.address for m in db.mailboxes(include_deleted=True)}
        for box in db.mailboxes():
            if mailbox is not None and box.address != mailbox:
                continue
            state.mailboxes[box.id] = box.address
            for folder in db.folders(box.address):
                key = (folder.id, folder.uidvalidity)
                state.folders[key] = FolderState(*key, box.address, folder.path)
                for m in db.messages(box.address, folder.path):
                    state.messages[(m.id, m.sha256)] = MessageState(
                        m.id, m.sha256, box.address, folder.path, key, m.uid, m.flags,
                        m.subject, m.message_id, m.internal_date)
    return state


def diff_databases(old: MailDatabase, new: MailDatabase, *, mailbox: str | None = None) -> Diff:
    """What changed from `old` to `new`, in every mailbox or in `mailbox` only. NotFound when
    `mailbox` is in neither."""
    address = mailbox.strip().lower() if mailbox is not None else None
    before, after = read_state(old, address), read_state(new, address)
    if address is not None:
        _check_known(address, before.known_addresses | after.known_addresses)
    return diff_states(before, after)


def diff_states(before: DatabaseState, after: DatabaseState) -> Diff:
    common = before.messages.keys() & after.messages.keys()
    changes = [MessageChange(before.messages[k], after.messages[k]) for k in common]
    renamed = [FolderChange(before.folders[k], after.folders[k])
               for k in before.folders.keys() & after.folders.keys()
               if before.folders[k].path != after.folders[k].path]
    return Diff(
        mailboxes_created=_sorted_values(after.mailboxes, before.mailboxes),
        mailboxes_deleted=_sorted_values(before.mailboxes, after.mailboxes),
        folders_created=_folders_only_in(after, before),
        folders_deleted=_folders_only_in(before, after),
        folders_renamed=tuple(sorted(renamed, key=lambda c: (c.after.mailbox, c.after.path))),
        messages_added=_messages_only_in(after, before),
        messages_deleted=_messages_only_in(before, after),
        messages_moved=_changes(c for c in changes if c.before.folder_key != c.after.folder_key),
        flags_changed=_changes(c for c in changes if c.before.flags != c.after.flags),
    )


def _sorted_values(these: dict[int, str], others: dict[int, str]) -> tuple[str, ...]:
    return tuple(sorted(address for key, address in these.items() if key not in others))


def _folders_only_in(these: DatabaseState, others: DatabaseState) -> tuple[FolderState, ...]:
    only = [f for key, f in these.folders.items() if key not in others.folders]
    return tuple(sorted(only, key=lambda f: (f.mailbox, f.path, f.id)))


def _messages_only_in(these: DatabaseState, others: DatabaseState) -> tuple[MessageState, ...]:
    only = [m for key, m in these.messages.items() if key not in others.messages]
    return tuple(sorted(only, key=MessageState.place))


def _changes(changes: Any) -> tuple[MessageChange, ...]:
    return tuple(sorted(changes, key=lambda c: (c.after.place(), c.before.place())))


def _check_known(address: str, known: set[str]) -> None:
    if address in known:
        return
    close = difflib.get_close_matches(address, sorted(known), n=3, cutoff=0.5)
    hint = ("Did you mean " + ", ".join(repr(c) for c in close) + "?") if close else (
        f"Mailboxes: {', '.join(sorted(known)[:8])}." if known else None)
    raise NotFound(f"no mailbox {address} at either point", hint=hint)
