"""Searching a database at a point in time with the full-text index it had then.

The query is the store's own `SearchQuery` (words in the text, sender, recipients, subject; dates;
attachments), run by `MailDatabase.search` on the snapshot, restricted to the folders of the
mailboxes that existed (all of them, or one), and each hit is given its mailbox and folder path.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from ..store import MailDatabase, Message, SearchQuery
from .browse import message_row
from .select import FolderPath, select_folders


@dataclass(frozen=True, slots=True)
class SearchHit:
    address: str
    folder: FolderPath
    message: Message

    def as_dict(self) -> dict[str, Any]:
        return {"mailbox": self.address, "folder": list(self.folder)} | message_row(self.message)


def search(db: MailDatabase, query: SearchQuery, *, mailbox: str | None = None,
           folder: FolderPath = ()) -> list[SearchHit]:
    """Messages matching `query`, newest first, in `mailbox` (and below `folder` in it) or in every
    mailbox. NotFound when the mailbox or folder did not exist."""
    with db.read():
        addresses = [mailbox] if mailbox is not None else [m.address for m in db.mailboxes()]
        places = {f.id: (address, f.path)
                  for address in addresses
                  for f in select_folders(db, address, folder if mailbox is not None else ())}
        given = places if query.folder_ids is None else query.folder_ids
        wanted = tuple(sorted(set(places) & set(given)))
        messages = db.search(replace(query, folder_ids=wanted)) if wanted else []
    return [SearchHit(*places[m.folder_id], m) for m in messages]
