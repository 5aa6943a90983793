"""Mailboxes and their folder trees, as operations on an open connection.

Callers hold the transaction; these functions only read and write rows. A mailbox is found by its
canonical address among the live (not deleted) mailboxes; a folder by its path of names from the
mailbox root.
"""

from __future__ import annotations

import difflib
import sqlite3
import time
from typing import Any

from ..errors import AlreadyExists, NotFound, UsageError
from .models import Folder, Mailbox
from .names import check_address, join_path
from .schema import STANDARD_FOLDERS

_MAILBOX_COLUMNS = "id, address, display_name, created_at, deleted_at"
_FOLDER_COLUMNS = "id, mailbox_id, parent_id, name, role, uidvalidity, uidnext, created_at"


def live_mailbox(connection: sqlite3.Connection, address: str) -> Mailbox:
    canonical = check_address(address)
    row = connection.execute(
        f"SELECT {_MAILBOX_COLUMNS} FROM mailboxes WHERE address = ? AND deleted_at IS NULL",
        (canonical,),
    ).fetchone()
    if row is None:
        known = [r[0] for r in connection.execute(
            "SELECT address FROM mailboxes WHERE deleted_at IS NULL")]
        raise NotFound(f"no mailbox {canonical}", hint=_nearest_hint(canonical, known))
    return Mailbox(*row)


def list_mailboxes(connection: sqlite3.Connection, *, include_deleted: bool) -> list[Mailbox]:
    where = "" if include_deleted else "WHERE deleted_at IS NULL"
    rows = connection.execute(
        f"SELECT {_MAILBOX_COLUMNS} FROM mailboxes {where} ORDER BY address, created_at, id")
    return [Mailbox(*row) for row in rows]


def create_mailbox(connection: sqlite3.Connection, address: str, display_name: str) -> Mailbox:
    canonical = check_address(address)
    if connection.execute(
        "SELECT 1 FROM mailboxes WHERE address = ? AND deleted_at IS NULL", (canonical,)
    ).fetchone():
        raise AlreadyExists(f"mailbox {canonical} already exists")
    now = int(time.time())
    cursor = connection.execute(
        "INSERT INTO mailboxes(address, display_name, created_at) VALUES (?, ?, ?)",
        (canonical, display_name, now),
    )
    mailbox_id = _rowid(cursor)
    for name, role in STANDARD_FOLDERS:
        _insert_folder(connection, mailbox_id, None, name, role)
    return live_mailbox(connection, canonical)


def delete_mailbox(connection: sqlite3.Connection, address: str, *, purge: bool) -> list[int]:
    """Mark a mailbox deleted; with `purge`, also remove its folders and messages. Returns the
    body ids the purge released, for the caller to collect."""
    mailbox = live_mailbox(connection, address)
    connection.execute(
        "UPDATE mailboxes SET deleted_at = ? WHERE id = ?", (int(time.time()), mailbox.id))
    if not purge:
        return []
    roots = [r[0] for r in connection.execute(
        "SELECT id FROM folders WHERE mailbox_id = ? AND parent_id IS NULL", (mailbox.id,))]
    released: list[int] = []
    for root in roots:
        released.extend(remove_subtree(connection, root))
    return released


def find_folder(connection: sqlite3.Connection, mailbox: Mailbox, path: tuple[str, ...]) -> Folder:
    if not path:
        raise UsageError("no folder given", hint="Name a folder, for example Inbox.")
    parent: int | None = None
    row = None
    for depth, name in enumerate(path):
        row = connection.execute(
            f"SELECT {_FOLDER_COLUMNS} FROM folders "
            "WHERE mailbox_id = ? AND ifnull(parent_id, 0) = ? AND name = ?",
            (mailbox.id, parent or 0, name),
        ).fetchone()
        if row is None:
            siblings = [r[0] for r in connection.execute(
                "SELECT name FROM folders WHERE mailbox_id = ? AND ifnull(parent_id, 0) = ?",
                (mailbox.id, parent or 0))]
            missing = join_path(path[: depth + 1])
            raise NotFound(
                f"no folder {missing} in mailbox {mailbox.address}",
                hint=_nearest_hint(name, siblings),
            )
        parent = row[0]
    assert row is not None
    return _folder(row, path)


def role_folder(connection: sqlite3.Connection, mailbox: Mailbox, role: str) -> Folder:
    row = connection.execute(
        f"SELECT {_FOLDER_COLUMNS} FROM folders WHERE mailbox_id = ? AND role = ?",
        (mailbox.id, role),
    ).fetchone()
    if row is None:
        raise NotFound(f"mailbox {mailbox.address} has no {role} folder")
    return _folder(row, _path_of(connection, row[0]))


def list_folders(connection: sqlite3.Connection, mailbox: Mailbox) -> list[Folder]:
    """Every folder of the mailbox with message and unseen counts, in path order."""
    rows = connection.execute(
        f"SELECT {_FOLDER_COLUMNS} FROM folders WHERE mailbox_id = ?", (mailbox.id,)).fetchall()
    counts = {
        folder_id: (total, unseen)
        for folder_id, total, unseen in connection.execute(
            "SELECT folder_id, count(*), sum((flags & 1) = 0) FROM messages "
            "WHERE folder_id IN (SELECT id FROM folders WHERE mailbox_id = ?) "
            "GROUP BY folder_id",
            (mailbox.id,),
        )
    }
    by_id = {row[0]: row for row in rows}
    paths: dict[int, tuple[str, ...]] = {}

    def path_of(folder_id: int) -> tuple[str, ...]:
        if folder_id not in paths:
            row = by_id[folder_id]
            paths[folder_id] = (path_of(row[2]) if row[2] else ()) + (row[3],)
        return paths[folder_id]

    folders = [
        _folder(row, path_of(row[0]), *counts.get(row[0], (0, 0))) for row in rows
    ]
    return sorted(folders, key=lambda f: f.path)


def create_folder(
    connection: sqlite3.Connection, mailbox: Mailbox, path: tuple[str, ...], *, parents: bool
) -> Folder:
    parent_id: int | None = None
    for depth, name in enumerate(path):
        existing = connection.execute(
            "SELECT id FROM folders WHERE mailbox_id = ? AND ifnull(parent_id, 0) = ? AND name = ?",
            (mailbox.id, parent_id or 0, name),
        ).fetchone()
        last = depth == len(path) - 1
        if existing and last:
            raise AlreadyExists(f"folder {join_path(path)} already exists in {mailbox.address}")
        if existing:
            parent_id = existing[0]
            continue
        if not last and not parents:
            raise NotFound(
                f"no folder {join_path(path[: depth + 1])} in mailbox {mailbox.address}",
                hint="Create the parent folder first, or pass --parents.",
            )
        parent_id = _insert_folder(connection, mailbox.id, parent_id, name, None)
    return find_folder(connection, mailbox, path)


def ensure_folder(connection: sqlite3.Connection, mailbox: Mailbox, path: tuple[str, ...]) -> Folder:
    try:
        return find_folder(connection, mailbox, path)
    except NotFound:
        return create_folder(connection, mailbox, path, parents=True)


def rename_folder(
    connection: sqlite3.Connection, mailbox: Mailbox, path: tuple[str, ...], new_path: tuple[str, ...]
) -> Folder:
    """Rename and/or move a folder with everything under it; UIDs and UIDVALIDITY are kept."""
    folder = find_folder(connection, mailbox, path)
    if folder.role:
        raise UsageError(f"{folder.path_text} is a standard folder and cannot be renamed or moved")
    if new_path[: len(path)] == path:
        raise UsageError(f"cannot move {folder.path_text} into itself")
    parent_id = find_folder(connection, mailbox, new_path[:-1]).id if len(new_path) > 1 else None
    clash = connection.execute(
        "SELECT 1 FROM folders WHERE mailbox_id = ? AND ifnull(parent_id, 0) = ? AND name = ?",
        (mailbox.id, parent_id or 0, new_path[-1]),
    ).fetchone()
    if clash:
        raise AlreadyExists(f"folder {join_path(new_path)} already exists in {mailbox.address}")
    connection.execute(
        "UPDATE folders SET parent_id = ?, name = ? WHERE id = ?",
        (parent_id, new_path[-1], folder.id),
    )
    return find_folder(connection, mailbox, new_path)


def remove_subtree(connection: sqlite3.Connection, folder_id: int) -> list[int]:
    """Delete a folder, its descendants and their messages; return the body ids that were used."""
    ids = [r[0] for r in connection.execute(
        "WITH RECURSIVE tree(id) AS (SELECT ? UNION ALL "
        "SELECT f.id FROM folders f JOIN tree ON f.parent_id = tree.id) SELECT id FROM tree",
        (folder_id,),
    )]
    marks = ",".join("?" * len(ids))
    bodies = [r[0] for r in connection.execute(
        f"SELECT DISTINCT body_id FROM messages WHERE folder_id IN ({marks})", ids)]
    connection.execute(f"DELETE FROM messages WHERE folder_id IN ({marks})", ids)
    connection.execute(f"DELETE FROM imports WHERE folder_id IN ({marks})", ids)
    connection.execute(f"DELETE FROM folders WHERE id IN ({marks})", ids)
    return bodies


def delete_folder(connection: sqlite3.Connection, mailbox: Mailbox, path: tuple[str, ...]) -> list[int]:
    folder = find_folder(connection, mailbox, path)
    if folder.role:
        raise UsageError(f"{folder.path_text} is a standard folder and cannot be deleted")
    return remove_subtree(connection, folder.id)


def next_uidvalidity(connection: sqlite3.Connection) -> int:
    """A UIDVALIDITY never handed out before in this database, so a re-created folder gets a new one."""
    stored = int(connection.execute(
        "SELECT value FROM meta WHERE key = 'next_uidvalidity'").fetchone()[0])
    value = max(stored, int(time.time()))
    connection.execute(
        "UPDATE meta SET value = ? WHERE key = 'next_uidvalidity'", (str(value + 1),))
    return value


def _insert_folder(
    connection: sqlite3.Connection, mailbox_id: int, parent_id: int | None, name: str,
    role: str | None,
) -> int:
    cursor = connection.execute(
        "INSERT INTO folders(mailbox_id, parent_id, name, role, uidvalidity, created_at) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        (mailbox_id, parent_id, name, role, next_uidvalidity(connection), int(time.time())),
    )
    return _rowid(cursor)


def _path_of(connection: sqlite3.Connection, folder_id: int) -> tuple[str, ...]:
    names: list[str] = []
    current: int | None = folder_id
    while current is not None:
        parent, name = connection.execute(
            "SELECT parent_id, name FROM folders WHERE id = ?", (current,)).fetchone()
        names.append(name)
        current = parent
    return tuple(reversed(names))


def folder_by_id(connection: sqlite3.Connection, folder_id: int) -> Folder:
    row = connection.execute(
        f"SELECT {_FOLDER_COLUMNS} FROM folders WHERE id = ?", (folder_id,)).fetchone()
    if row is None:
        raise NotFound(f"no folder with id {folder_id}")
    return _folder(row, _path_of(connection, folder_id))


def _folder(row: Any, path: tuple[str, ...], total: int = 0, unseen: int = 0) -> Folder:
    folder_id, mailbox_id, parent_id, _name, role, uidvalidity, uidnext, created_at = row
    return Folder(
        folder_id, mailbox_id, parent_id, path, role, uidvalidity, uidnext, created_at,
        messages=int(total or 0), unseen=int(unseen or 0),
    )


def _rowid(cursor: sqlite3.Cursor) -> int:
    assert cursor.lastrowid is not None
    return cursor.lastrowid


def _nearest_hint(name: str, candidates: list[str]) -> str | None:
    close = difflib.get_close_matches(name, candidates, n=3, cutoff=0.5)
    if close:
        return "Did you mean " + ", ".join(repr(c) for c in close) + "?"
    if candidates:
        shown = ", ".join(repr(c) for c in sorted(candidates)[:8])
        return f"Existing: {shown}."
    return None

