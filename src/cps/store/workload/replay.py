"""Replaying an operation log on a model of the mail database: the log as an oracle.

`replay` applies the records of a workload log (see `log.py`) in order to an empty `LogModel`, which
then holds what the database should contain: its folders, and per folder each message's UID, SHA-256
and flags. `database_content` reads the same shape from a real database through `MailDatabase`, so a
test asserts `replay(records).content() == database_content(db)`; with `until`, the model is the
content as of a moment, which is what a restore to that moment must give.

The model also checks the log against itself: a record that names a message or folder the model does
not have, or states a before-state (source folder, UIDs, a deleted folder's messages) that differs
from the model's, raises `LogMismatch` naming the record. Error records changed nothing and are
skipped. The model holds every message of the run in memory: it is for tests and tools, not for the
generator.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..database import MailDatabase

FolderKey = tuple[str, tuple[str, ...]]  # (mailbox address, folder path)
Content = dict[FolderKey, dict[int, tuple[str, frozenset[str]]]]  # folder -> uid -> (sha256, flags)


class LogMismatch(Exception):
    """The log contradicts itself: it is not a faithful record of one run on an empty database."""


@dataclass(frozen=True, slots=True)
class ModelMessage:
    mailbox: str
    folder: tuple[str, ...]
    uid: int
    sha256: str
    flags: frozenset[str]


@dataclass(slots=True)
class LogModel:
    folders: set[FolderKey] = field(default_factory=set)
    messages: dict[int, ModelMessage] = field(default_factory=dict)

    def apply(self, record: Mapping[str, Any]) -> None:
        if "error" in record:
            return
        handler = getattr(self, f"_{record['op']}", None)
        if handler is None:
            raise LogMismatch(f"record {record['seq']}: unknown operation {record['op']!r}")
        handler(record)

    def content(self) -> Content:
        result: Content = {key: {} for key in self.folders}
        for message in self.messages.values():
            result[(message.mailbox, message.folder)][message.uid] = (
                message.sha256, message.flags)
        return result

    def _mailbox_create(self, r: Mapping[str, Any]) -> None:
        self.folders.update((r["mailbox"], tuple(path)) for path in r["folders"])

    def _deliver(self, r: Mapping[str, Any]) -> None:
        for d in r["deliveries"]:
            self._need_folder(r, d["mailbox"], d["folder"])
            self.messages[d["message_id"]] = ModelMessage(
                d["mailbox"], tuple(d["folder"]), d["uid"], r["sha256"], frozenset(r["flags"]))

    def _read(self, r: Mapping[str, Any]) -> None:
        self._flag(r)

    def _flag(self, r: Mapping[str, Any]) -> None:
        for message_id in self._check_messages(r, r["folder"], r["uids"]):
            message = self.messages[message_id]
            flags = (message.flags | set(r["add"])) - set(r["remove"])
            self.messages[message_id] = replace(message, flags=flags)

    def _move(self, r: Mapping[str, Any]) -> None:
        self._need_folder(r, r["mailbox"], r["to"])
        ids = self._check_messages(r, r["from"], r["from_uids"])
        for message_id, uid in zip(ids, r["uids"], strict=True):
            self.messages[message_id] = replace(
                self.messages[message_id], folder=tuple(r["to"]), uid=uid)

    def _delete(self, r: Mapping[str, Any]) -> None:
        self._move(r)

    def _expunge(self, r: Mapping[str, Any]) -> None:
        for message_id in self._check_messages(r, r["folder"], r["uids"]):
            del self.messages[message_id]

    def _folder_create(self, r: Mapping[str, Any]) -> None:
        key = (r["mailbox"], tuple(r["folder"]))
        if key in self.folders:
            raise LogMismatch(f"record {r['seq']}: folder {r['folder']} exists already")
        self.folders.add(key)

    def _folder_rename(self, r: Mapping[str, Any]) -> None:
        self._need_folder(r, r["mailbox"], r["from"])
        old, new = tuple(r["from"]), tuple(r["to"])
        self.folders = {
            (mailbox, _moved(path, old, new) if mailbox == r["mailbox"] else path)
            for mailbox, path in self.folders
        }
        for message_id, m in self.messages.items():
            if m.mailbox == r["mailbox"]:
                self.messages[message_id] = replace(m, folder=_moved(m.folder, old, new))

    def _folder_delete(self, r: Mapping[str, Any]) -> None:
        top = tuple(r["folder"])
        doomed = {key for key in self.folders if key[0] == r["mailbox"] and _within(key[1], top)}
        if doomed != {(r["mailbox"], tuple(path)) for path in r["folders"]}:
            raise LogMismatch(f"record {r['seq']}: the deleted folders differ from the model's")
        held = {i for i, m in self.messages.items() if (m.mailbox, m.folder) in doomed}
        if held != set(r["message_ids"]):
            raise LogMismatch(f"record {r['seq']}: the deleted messages differ from the model's")
        self.folders -= doomed
        for message_id in held:
            del self.messages[message_id]

    def _need_folder(self, r: Mapping[str, Any], mailbox: str, path: Sequence[str]) -> None:
        if (mailbox, tuple(path)) not in self.folders:
            raise LogMismatch(f"record {r['seq']}: no folder {list(path)} in {mailbox}")

    def _check_messages(
        self, r: Mapping[str, Any], folder: Sequence[str], uids: Sequence[int]
    ) -> list[int]:
        """The record's message ids, after checking each is where the record says it was."""
        ids: list[int] = r["message_ids"]
        for message_id, uid in zip(ids, uids, strict=True):
            message = self.messages.get(message_id)
            where = (r["mailbox"], tuple(folder), uid)
            if message is None or (message.mailbox, message.folder, message.uid) != where:
                raise LogMismatch(
                    f"record {r['seq']}: message {message_id} is not at {list(folder)} UID {uid}")
        return ids


def read_log(path: str | Path) -> Iterator[dict[str, Any]]:
    with Path(path).open(encoding="utf-8") as lines:
        for line in lines:
            yield json.loads(line)


def replay(records: Iterable[Mapping[str, Any]], *, until: float | None = None) -> LogModel:
    """The model after every record (committed at or before `until`, if given)."""
    model = LogModel()
    for record in records:
        if until is not None and record.get("committed_at", until) > until:
            break
        model.apply(record)
    return model


def database_content(db: MailDatabase, addresses: Iterable[str] | None = None) -> Content:
    """The live content of `db` (of the given mailboxes, else all live ones) in the model's shape."""
    if addresses is None:
        addresses = [m.address for m in db.mailboxes()]
    content: Content = {}
    for address in addresses:
        for folder in db.folders(address):
            content[(address, folder.path)] = {
                m.uid: (m.sha256, m.flags) for m in db.messages(address, folder.path)}
    return content


def _within(path: tuple[str, ...], ancestor: tuple[str, ...]) -> bool:
    return path[: len(ancestor)] == ancestor


def _moved(path: tuple[str, ...], old: tuple[str, ...], new: tuple[str, ...]) -> tuple[str, ...]:
    return new + path[len(old):] if _within(path, old) else path
