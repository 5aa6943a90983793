"""Reading messages: listing a folder, fetching raw bytes, full-text search, statistics."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import NotFound, UsageError
from .models import Message, Stats, mask_to_flags

_MESSAGE_SELECT = (
    "SELECT m.id, m.folder_id, m.uid, m.internal_date, m.flags, m.keywords, b.size, b.sha256, "
    "b.message_id, b.subject, b.from_addr, b.to_addr, b.cc_addr, b.sent_date, b.has_attachments "
    "FROM messages m JOIN bodies b ON b.id = m.body_id "
)


@dataclass(frozen=True, slots=True)
class SearchQuery:
    """What to look for; every given field must match. Text fields use full-text matching of
    whole words (a trailing * matches a prefix); dates are seconds since the epoch."""

    text: str | None = None
    from_: str | None = None
    to: str | None = None
    subject: str | None = None
    since: int | None = None
    before: int | None = None
    has_attachment: bool | None = None
    folder_ids: tuple[int, ...] | None = None
    limit: int = 1000


def list_messages(
    connection: sqlite3.Connection, folder_id: int, *, limit: int | None = None, offset: int = 0
) -> list[Message]:
    # Page through the (folder_id, uid) index alone first: an OFFSET over the joined rows would
    # read every skipped message and body.
    ids = [row[0] for row in connection.execute(
        "SELECT id FROM messages WHERE folder_id = ? ORDER BY uid LIMIT ? OFFSET ?",
        (folder_id, -1 if limit is None else limit, offset),
    )]
    rows = connection.execute(
        _MESSAGE_SELECT + "WHERE m.id IN (SELECT value FROM json_each(?)) ORDER BY m.uid",
        (json.dumps(ids),),
    )
    return [_message(row) for row in rows]


def get_message(connection: sqlite3.Connection, message_id: int) -> Message:
    row = connection.execute(_MESSAGE_SELECT + "WHERE m.id = ?", (message_id,)).fetchone()
    if row is None:
        raise NotFound(f"no message with id {message_id}")
    return _message(row)


def message_by_uid(connection: sqlite3.Connection, folder_id: int, uid: int) -> Message:
    row = connection.execute(
        _MESSAGE_SELECT + "WHERE m.folder_id = ? AND m.uid = ?", (folder_id, uid)).fetchone()
    if row is None:
        raise NotFound(f"no message with UID {uid} in that folder")
    return _message(row)


def fetch_raw(connection: sqlite3.Connection, message_id: int) -> bytes:
    row = connection.execute(
        "SELECT r.raw FROM messages m JOIN body_raw r ON r.body_id = m.body_id WHERE m.id = ?",
        (message_id,),
    ).fetchone()
    if row is None:
        raise NotFound(f"no message with id {message_id}")
    return bytes(row[0])


def attachments_of(connection: sqlite3.Connection, message_id: int) -> list[tuple[str, str, int]]:
    return [tuple(r) for r in connection.execute(
        "SELECT a.filename, a.content_type, a.size FROM attachments a "
        "JOIN messages m ON m.body_id = a.body_id WHERE m.id = ? ORDER BY a.position",
        (message_id,),
    )]


def search(connection: sqlite3.Connection, query: SearchQuery) -> list[Message]:
    where: list[str] = []
    params: list[Any] = []
    match = _match_expression(query)
    if match:
        where.append("b.id IN (SELECT rowid FROM body_text WHERE body_text MATCH ?)")
        params.append(match)
    if query.since is not None:
        where.append("m.internal_date >= ?")
        params.append(query.since)
    if query.before is not None:
        where.append("m.internal_date < ?")
        params.append(query.before)
    if query.has_attachment is not None:
        where.append("b.has_attachments = ?")
        params.append(int(query.has_attachment))
    if query.folder_ids is not None:
        where.append(f"m.folder_id IN ({','.join('?' * len(query.folder_ids))})")
        params.extend(query.folder_ids)
    sql = _MESSAGE_SELECT + ("WHERE " + " AND ".join(where) if where else "")
    sql += " ORDER BY m.internal_date DESC, m.id DESC LIMIT ?"
    try:
        rows = connection.execute(sql, (*params, query.limit)).fetchall()
    except sqlite3.OperationalError as exc:
        raise UsageError(f"cannot search for that: {exc}") from exc
    return [_message(row) for row in rows]


def stats(connection: sqlite3.Connection, path: Path) -> Stats:
    mailboxes, deleted = connection.execute(
        "SELECT count(*) FILTER (WHERE deleted_at IS NULL), count(*) FILTER (WHERE deleted_at "
        "IS NOT NULL) FROM mailboxes").fetchone()
    folders = connection.execute("SELECT count(*) FROM folders").fetchone()[0]
    messages, message_bytes = connection.execute(
        "SELECT count(*), ifnull(sum(b.size), 0) FROM messages m JOIN bodies b ON b.id = m.body_id"
    ).fetchone()
    bodies, body_bytes = connection.execute(
        "SELECT count(*), ifnull(sum(size), 0) FROM bodies").fetchone()
    wal = Path(f"{path}-wal")
    return Stats(
        mailboxes=mailboxes, deleted_mailboxes=deleted, folders=folders, messages=messages,
        message_bytes=message_bytes, bodies=bodies, body_bytes=body_bytes,
        file_bytes=path.stat().st_size, wal_bytes=wal.stat().st_size if wal.exists() else 0,
    )


def _match_expression(query: SearchQuery) -> str:
    clauses = []
    for column, value in (
        (None, query.text), ("from_addr", query.from_), ("to_addr", query.to),
        ("subject", query.subject),
    ):
        if value:
            terms = " ".join(_quote_term(t) for t in value.split())
            clauses.append(f"{column} : ({terms})" if column else f"({terms})")
    return " AND ".join(clauses)


def _quote_term(term: str) -> str:
    prefix = term.endswith("*") and len(term) > 1
    word = term[:-1] if prefix else term
    return '"' + word.replace('"', '""') + '"' + ("*" if prefix else "")


def _message(row: Any) -> Message:
    (message_id, folder_id, uid, internal_date, mask, keywords, size, sha256, mid, subject,
     from_, to, cc, sent_date, has_attachments) = row
    return Message(
        id=message_id, folder_id=folder_id, uid=uid, internal_date=internal_date,
        flags=mask_to_flags(mask, keywords), size=size, sha256=bytes(sha256).hex(),
        message_id=mid, subject=subject, from_=from_, to=to, cc=cc, sent_date=sent_date,
        has_attachments=bool(has_attachments),
    )
