"""Looking around a database at a point in time: mailboxes, folder trees, messages, one message.

Everything here reads through `MailDatabase`, so it works the same on a snapshot (`snapshots.py`)
and on a live database. Listings are snapshots themselves: frozen records with `as_dict` for JSON.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..store import Folder, MailDatabase, Message, parse_message
from .select import FolderPath, select_folders, select_message

MOST_SKIPPED = 10**9  # an offset past any folder that SQLite still takes


@dataclass(frozen=True, slots=True)
class MailboxSummary:
    address: str
    display_name: str
    folders: int
    messages: int
    unseen: int

    def as_dict(self) -> dict[str, Any]:
        return {"address": self.address, "display_name": self.display_name,
                "folders": self.folders, "messages": self.messages, "unseen": self.unseen}


@dataclass(frozen=True, slots=True)
class MessageView:
    """One message as `show` presents it: where it is, its record, text and attachments."""

    address: str
    folder: FolderPath
    message: Message
    raw: bytes
    text: str
    attachments: tuple[tuple[str, str, int], ...]  # (filename, content type, decoded size)

    def as_dict(self) -> dict[str, Any]:
        return message_row(self.message) | {
            "mailbox": self.address, "folder": list(self.folder), "to": self.message.to,
            "cc": self.message.cc, "text": self.text,
            "attachments": [{"filename": f, "content_type": t, "size": s}
                            for f, t, s in self.attachments],
        }


def mailboxes(db: MailDatabase) -> list[MailboxSummary]:
    """The mailboxes that existed, with folder, message and unseen counts."""
    summaries = []
    with db.read():
        for mailbox in db.mailboxes():
            folders = db.folders(mailbox.address)
            summaries.append(MailboxSummary(
                mailbox.address, mailbox.display_name, len(folders),
                sum(f.messages for f in folders), sum(f.unseen for f in folders)))
    return summaries


def folder_tree(db: MailDatabase, address: str) -> list[Folder]:
    """A mailbox's folders in path order, with message and unseen counts."""
    return select_folders(db, address)


def show_message(db: MailDatabase, address: str, folder: FolderPath, selector: str) -> MessageView:
    """The message `selector` names: a UID in `folder`, or a Message-ID (see `select.py`)."""
    with db.read():
        found = select_message(db, address, folder, selector)
        raw = db.fetch_raw(found.message.id)
        attachments = tuple(db.attachments(found.message.id))
    text = parse_message(raw).envelope.text
    return MessageView(address, found.folder.path, found.message, raw, text, attachments)


def message_row(message: Message) -> dict[str, Any]:
    """The fields of a message listing, as JSON: dates are seconds since the epoch."""
    return {
        "id": message.id, "uid": message.uid, "date": message.internal_date,
        "from": message.from_, "subject": message.subject, "size": message.size,
        "flags": sorted(message.flags), "message_id": message.message_id,
        "sha256": message.sha256, "has_attachments": message.has_attachments,
    }


def folder_row(folder: Folder) -> dict[str, Any]:
    """The fields of a folder tree's entry, as JSON."""
    return {"id": folder.id, "path": list(folder.path), "role": folder.role,
            "messages": folder.messages, "unseen": folder.unseen,
            "uidvalidity": folder.uidvalidity, "uidnext": folder.uidnext}


def folder_page(db: MailDatabase, address: str, folder: FolderPath, *, limit: int,
                offset: int) -> dict[str, Any]:
    """One page of a folder's messages in UID order, with how many it holds in all."""
    counted = select_folders(db, address, folder)  # MailDatabase.folder() does not count
    total = next(f.messages for f in counted if f.path == tuple(folder))
    page = db.messages(address, tuple(folder), limit=limit, offset=offset)
    return {"mailbox": address, "folder": list(folder), "total": total, "offset": offset,
            "limit": limit, "messages": [message_row(m) for m in page]}
