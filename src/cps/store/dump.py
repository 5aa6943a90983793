"""The canonical dump: a deterministic text form of a mail database's logical content.

Two databases with the same mailboxes, folders and messages print the same bytes, whatever their
row ids, page layout or history; that is what backups and restores are judged by. Format 1::

    cps-dump 1
    mailbox "alice@example.com" name="Alice" created=2026-11-23T14:00:00Z deleted=-
      folder "Inbox" role=inbox uidvalidity=1795444762 uidnext=3 created=2026-11-23T14:00:00Z
        message uid=1 date=2026-11-23T14:01:02Z flags="\\\\Seen $Label1" size=69 sha256=01ec…

Mailboxes come in (address, created, deleted) order, folders in path order (a path is the JSON list
of its names), messages in UID order. Strings are JSON-quoted, so any name prints on one line.
Derived data (the full-text index, parsed envelopes) is left out: the body hash covers it.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime

from .connection import snapshot
from .folders import list_folders, list_mailboxes
from .models import mask_to_flags

DUMP_FORMAT = 1


def dump_lines(connection: sqlite3.Connection) -> Iterator[str]:
    """Yield the dump line by line (each ending in a newline) from one consistent snapshot."""
    with snapshot(connection):
        yield f"cps-dump {DUMP_FORMAT}\n"
        for mailbox in list_mailboxes(connection, include_deleted=True):
            deleted = _time(mailbox.deleted_at) if mailbox.deleted_at is not None else "-"
            yield (
                f"mailbox {_q(mailbox.address)} name={_q(mailbox.display_name)} "
                f"created={_time(mailbox.created_at)} deleted={deleted}\n"
            )
            for folder in list_folders(connection, mailbox):
                yield (
                    f"  folder {_q(list(folder.path))} role={folder.role or '-'} "
                    f"uidvalidity={folder.uidvalidity} uidnext={folder.uidnext} "
                    f"created={_time(folder.created_at)}\n"
                )
                yield from _message_lines(connection, folder.id)


def _message_lines(connection: sqlite3.Connection, folder_id: int) -> Iterator[str]:
    rows = connection.execute(
        "SELECT m.uid, m.internal_date, m.flags, m.keywords, b.size, b.sha256 "
        "FROM messages m JOIN bodies b ON b.id = m.body_id WHERE m.folder_id = ? ORDER BY m.uid",
        (folder_id,),
    )
    for uid, internal_date, mask, keywords, size, sha256 in rows:
        flags = " ".join(sorted(mask_to_flags(mask, keywords)))
        yield (
            f"    message uid={uid} date={_time(internal_date)} flags={_q(flags)} "
            f"size={size} sha256={bytes(sha256).hex()}\n"
        )


def _q(value: object) -> str:
    return json.dumps(value, ensure_ascii=False)


def _time(seconds: int) -> str:
    try:
        return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (OverflowError, OSError, ValueError):  # a date no calendar prints: keep the number
        return str(seconds)
