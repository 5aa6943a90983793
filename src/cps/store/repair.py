"""Repairs of a mail database that lose no mail, for `cps verify store --repair`.

Verification (`src/cps/verify/`) decides what is wrong; the fixes are here, in the store, because
`MailDatabase` alone writes a mail database. Each fix rebuilds what the store derives from the raw
bytes (indexes, the full-text index), recomputes what it caches (a body's size), or moves numbering
and folders to where the store's rules want them. None deletes a message or changes a body's
bytes. `MailDatabase.repairing()` runs them in one write transaction: all commit, or none.
"""

from __future__ import annotations

import sqlite3

from ..errors import NotFound, StoreError
from . import messages as _messages
from .parse import parse_envelope


class StoreRepair:
    """The fixes, on the connection of an open write transaction."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self.connection = connection

    def rebuild_index(self, name: str) -> None:
        """Rebuild one index of the schema from its table (SQLite's REINDEX)."""
        if not self.connection.execute(
                "SELECT 1 FROM sqlite_schema WHERE type = 'index' AND name = ?", (name,)).fetchone():
            raise NotFound(f"no index {name} in the mail database")
        self.connection.execute(f'REINDEX "{name}"')  # a name the schema holds: no quote inside

    def raise_uidnext(self, folder_id: int) -> None:
        """Set a folder's UIDNEXT above the highest UID in it, so no UID is handed out twice."""
        self.connection.execute(
            "UPDATE folders SET uidnext = max(uidnext, (SELECT ifnull(max(uid), 0) + 1 "
            "FROM messages NOT INDEXED WHERE folder_id = ?1)) WHERE id = ?1", (folder_id,))

    def raise_next_uidvalidity(self) -> None:
        """Set the next UIDVALIDITY above every folder's, so a new folder never reuses one."""
        self.connection.execute(
            "UPDATE meta SET value = CAST(max(CAST(value AS INTEGER), "
            "(SELECT ifnull(max(uidvalidity), 0) + 1 FROM folders)) AS TEXT) "
            "WHERE key = 'next_uidvalidity'")

    def renumber(self, message_id: int) -> int:
        """Give a message the next UID of its own folder, as moving it there would (its UID is
        another message's too); returns the new UID."""
        folder_id = _messages.folder_of(self.connection, message_id)
        return _messages.move(self.connection, [message_id], folder_id)[0]

    def resize_body(self, body_id: int) -> None:
        """Set a body's cached size from its bytes."""
        self.connection.execute(
            "UPDATE bodies SET size = (SELECT length(raw) FROM body_raw WHERE body_id = ?1) "
            "WHERE id = ?1 AND EXISTS (SELECT 1 FROM body_raw WHERE body_id = ?1)", (body_id,))

    def index_text(self, body_id: int) -> bool:
        """Index a body's words again, parsed from its bytes, in place of any entry it has;
        False when its bytes are lost (only a backup has them)."""
        row = self.connection.execute(
            "SELECT raw FROM body_raw WHERE body_id = ?", (body_id,)).fetchone()
        if row is None:
            return False
        self.connection.execute("DELETE FROM body_text WHERE rowid = ?", (body_id,))
        _messages.index_text(self.connection, body_id, parse_envelope(bytes(row[0])))
        return True

    def unindex_text(self, rowid: int) -> None:
        """Remove the full-text entry of a body that is gone."""
        self.connection.execute("DELETE FROM body_text WHERE rowid = ?", (rowid,))

    def rebuild_text_index(self) -> None:
        """Rebuild the full-text index's search structures from the text it stores."""
        self.connection.execute("INSERT INTO body_text(body_text) VALUES ('rebuild')")

    def reattach_folder(self, folder_id: int) -> str:
        """Move a folder whose parent is gone, is in another mailbox or is the folder's own
        descendant to the top of its mailbox, under its name, or '<name> (folder ID)' when a
        folder there has that name. Returns the name it has there."""
        row = self.connection.execute(
            "SELECT mailbox_id, name FROM folders WHERE id = ?", (folder_id,)).fetchone()
        if row is None:
            raise NotFound(f"no folder with id {folder_id}")
        mailbox_id, name = row
        taken = self.connection.execute(
            "SELECT 1 FROM folders WHERE mailbox_id = ? AND parent_id IS NULL AND name = ? "
            "AND id != ?", (mailbox_id, name, folder_id)).fetchone()
        new_name = f"{name} (folder {folder_id})" if taken else name
        self.connection.execute("UPDATE folders SET parent_id = NULL, name = ? WHERE id = ?",
                                (new_name, folder_id))
        return str(new_name)


def text_index_problem(connection: sqlite3.Connection) -> str | None:
    """What FTS5's own check finds wrong with the full-text index's search structures, or None.

    The check is a write statement to SQLite, though it writes nothing, so it runs in a write
    transaction that is rolled back: writers wait for it (under a second on a 1 GB store)."""
    try:
        connection.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as exc:
        raise StoreError(f"the full-text index could not be checked: {exc}") from exc
    try:
        connection.execute("INSERT INTO body_text(body_text) VALUES ('integrity-check')")
    except sqlite3.DatabaseError as exc:
        return str(exc)
    finally:
        if connection.in_transaction:  # SQLite may have rolled it back itself at the damage
            connection.execute("ROLLBACK")
    return None
