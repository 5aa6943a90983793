"""Placing, moving, flagging and removing messages, as operations on an open connection.

A body (the raw bytes, its parsed envelope, attachment list and full-text entry) is stored once per
distinct SHA-256; a message row places a body in a folder under a fresh IMAP UID. Removing the last
message that uses a body removes the body with it, in the same transaction. Callers hold the
transaction and parse messages before opening it, so write transactions stay short.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ..errors import NotFound, UsageError
from .models import flags_to_mask
from .parse import Envelope

# messages.flags bit for \Seen: unseen counts and the "read" operation use it.
SEEN = 1


@dataclass(frozen=True, slots=True)
class ParsedMessage:
    """A raw message with what the store derives from it, ready to be placed (parse outside the
    write transaction, place inside it)."""

    raw: bytes
    sha256: bytes
    envelope: Envelope


def store_body(connection: sqlite3.Connection, message: ParsedMessage) -> int:
    """The id of the body with these bytes, storing it first if this database does not hold it."""
    row = connection.execute("SELECT id FROM bodies WHERE sha256 = ?", (message.sha256,)).fetchone()
    if row:
        _mend_raw(connection, int(row[0]), message.raw)
        return int(row[0])
    env = message.envelope
    cursor = connection.execute(
        "INSERT INTO bodies(sha256, size, message_id, subject, from_addr, to_addr, cc_addr, "
        "sent_date, in_reply_to, refs, has_attachments) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
        (
            message.sha256, len(message.raw), env.message_id, env.subject, env.from_, env.to,
            env.cc, env.date, env.in_reply_to, env.references, bool(env.attachments),
        ),
    )
    body_id = cursor.lastrowid
    connection.execute("INSERT INTO body_raw(body_id, raw) VALUES (?, ?)", (body_id, message.raw))
    connection.executemany(
        "INSERT INTO attachments(body_id, position, filename, content_type, size) "
        "VALUES (?, ?, ?, ?, ?)",
        [(body_id, i, a.filename, a.content_type, a.size) for i, a in enumerate(env.attachments)],
    )
    assert body_id is not None
    index_text(connection, body_id, env)
    return body_id


def index_text(connection: sqlite3.Connection, body_id: int, envelope: Envelope) -> None:
    """Put a body's words in the full-text index (a body the index has must be removed first)."""
    connection.execute(
        "INSERT INTO body_text(rowid, subject, from_addr, to_addr, text) VALUES (?, ?, ?, ?, ?)",
        (body_id, envelope.subject, envelope.from_, f"{envelope.to} {envelope.cc}", envelope.text),
    )


def _mend_raw(connection: sqlite3.Connection, body_id: int, raw: bytes) -> None:
    """Give a stored body these bytes back if it lost them or they changed (`cps verify store`
    reports both). `raw` hashes to the body's SHA-256, so it is that body's content: this is how
    recovering a message from a backup mends every message that shares its body. Reading the
    stored bytes costs only when a message the database holds already comes again."""
    stored = connection.execute("SELECT raw FROM body_raw WHERE body_id = ?", (body_id,)).fetchone()
    if stored is None or bytes(stored[0]) != raw:
        connection.execute("INSERT OR REPLACE INTO body_raw(body_id, raw) VALUES (?, ?)",
                           (body_id, raw))


def place(
    connection: sqlite3.Connection,
    folder_id: int,
    body_id: int,
    internal_date: int,
    flags: Iterable[str] = (),
) -> tuple[int, int]:
    """Put a body in a folder under the folder's next UID; returns (message id, uid)."""
    mask, keywords = _flags(flags)
    return _insert(connection, folder_id, body_id, internal_date, mask, keywords)


def _insert(connection: sqlite3.Connection, folder_id: int, body_id: int, internal_date: int,
            mask: int, keywords: str) -> tuple[int, int]:
    uid = _next_uid(connection, folder_id)
    cursor = connection.execute(
        "INSERT INTO messages(folder_id, uid, body_id, internal_date, flags, keywords) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        (folder_id, uid, body_id, internal_date, mask, keywords),
    )
    assert cursor.lastrowid is not None
    return cursor.lastrowid, uid


def move(connection: sqlite3.Connection, message_ids: Sequence[int], folder_id: int) -> list[int]:
    """Move messages to a folder, each under a new UID there (as IMAP MOVE does); returns the UIDs."""
    uids = []
    for message_id in message_ids:
        _require(connection, message_id)
        uid = _next_uid(connection, folder_id)
        connection.execute(
            "UPDATE messages SET folder_id = ?, uid = ? WHERE id = ?", (folder_id, uid, message_id))
        uids.append(uid)
    return uids


def copy(connection: sqlite3.Connection, message_ids: Sequence[int], folder_id: int) -> list[int]:
    """Copy messages into a folder, sharing their bodies; returns the new message ids."""
    return [_insert(connection, folder_id, *_require(connection, message_id))[0]
            for message_id in message_ids]


def change_flags(
    connection: sqlite3.Connection,
    message_ids: Sequence[int],
    add: Iterable[str] = (),
    remove: Iterable[str] = (),
) -> None:
    add_mask, add_keywords = _flags(add)
    remove_mask, remove_keywords = _flags(remove)
    for message_id in message_ids:
        _body, _date, mask, keywords = _require(connection, message_id)
        words = (set(keywords.split()) | set(add_keywords.split())) - set(remove_keywords.split())
        connection.execute(
            "UPDATE messages SET flags = ?, keywords = ? WHERE id = ?",
            ((mask | add_mask) & ~remove_mask, " ".join(sorted(words)), message_id),
        )


def expunge(connection: sqlite3.Connection, message_ids: Sequence[int]) -> None:
    """Remove messages for good, and any body no message uses any more."""
    bodies = [_require(connection, message_id)[0] for message_id in message_ids]
    connection.executemany("DELETE FROM messages WHERE id = ?", [(i,) for i in message_ids])
    collect_bodies(connection, bodies)


def collect_bodies(connection: sqlite3.Connection, body_ids: Iterable[int]) -> None:
    """Delete the given bodies that no message refers to any more."""
    for body_id in set(body_ids):
        if connection.execute(
            "SELECT 1 FROM messages WHERE body_id = ? LIMIT 1", (body_id,)
        ).fetchone():
            continue
        connection.execute("DELETE FROM body_text WHERE rowid = ?", (body_id,))
        connection.execute("DELETE FROM attachments WHERE body_id = ?", (body_id,))
        connection.execute("DELETE FROM body_raw WHERE body_id = ?", (body_id,))
        connection.execute("DELETE FROM bodies WHERE id = ?", (body_id,))


def folder_of(connection: sqlite3.Connection, message_id: int) -> int:
    row = connection.execute("SELECT folder_id FROM messages WHERE id = ?", (message_id,)).fetchone()
    if row is None:
        raise NotFound(f"no message with id {message_id}")
    return int(row[0])


def _require(connection: sqlite3.Connection, message_id: int) -> tuple[int, int, int, str]:
    row = connection.execute(
        "SELECT body_id, internal_date, flags, keywords FROM messages WHERE id = ?", (message_id,)
    ).fetchone()
    if row is None:
        raise NotFound(f"no message with id {message_id}")
    return row  # type: ignore[no-any-return]


def _next_uid(connection: sqlite3.Connection, folder_id: int) -> int:
    # A SELECT and an UPDATE rather than UPDATE ... RETURNING, which makes FTS5 flush its pending
    # index data at every call and slows bulk writes by a third.
    row = connection.execute("SELECT uidnext FROM folders WHERE id = ?", (folder_id,)).fetchone()
    if row is None:
        raise NotFound(f"no folder with id {folder_id}")
    connection.execute("UPDATE folders SET uidnext = ? WHERE id = ?", (row[0] + 1, folder_id))
    return int(row[0])


def _flags(flags: Iterable[str]) -> tuple[int, str]:
    try:
        return flags_to_mask(tuple(flags))
    except ValueError as exc:
        raise UsageError(str(exc), hint="Use \\Seen, \\Answered, \\Flagged, \\Deleted, \\Draft "
                         "or a keyword without spaces.") from exc
