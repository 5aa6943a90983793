"""The `imports` table: which items of an import's source a folder has received, as operations on
an open connection (`MailDatabase.import_batch` is their one caller that writes).

A row is (the import's target folder, the item's stable source key, the message it became). The
row is inserted in the transaction that stores the message, so a key recorded is a message stored:
an import that runs again, or resumes after a kill, skips exactly the keys recorded. A key is
claimed with INSERT OR IGNORE before its message is placed, so two runs of one import at once
store each message once: the run whose claim inserted nothing leaves the message to the other.
"""

from __future__ import annotations

import sqlite3


def imported_sources(connection: sqlite3.Connection, folder_id: int) -> set[str]:
    """The source keys of every item imported into the folder so far."""
    return {row[0] for row in connection.execute(
        "SELECT source FROM imports WHERE folder_id = ?", (folder_id,))}


def claim(connection: sqlite3.Connection, folder_id: int, key: str) -> bool:
    """Record the key as imported; False if it was recorded already (by a concurrent run)."""
    return bool(connection.execute(
        "INSERT OR IGNORE INTO imports(folder_id, source) VALUES (?, ?)", (folder_id, key)
    ).rowcount)


def record_message(connection: sqlite3.Connection, folder_id: int, key: str, message_id: int) -> None:
    """Name the message a claimed key became."""
    connection.execute("UPDATE imports SET message_id = ? WHERE folder_id = ? AND source = ?",
                       (message_id, folder_id, key))
