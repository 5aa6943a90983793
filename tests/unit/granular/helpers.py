"""Small real mail databases for the granular tests: messages to deliver, and frozen copies."""

from __future__ import annotations

import shutil
from pathlib import Path

from cps.store import MailDatabase

ALICE = "alice@example.com"
BOB = "bob@example.com"


def mail(n: int, *, subject: str | None = None, message_id: str | None = None) -> bytes:
    """A distinct small message; `message_id` lets two messages share one."""
    mid = message_id or f"<m{n}@example.org>"
    return (f"From: Carol <carol@example.org>\r\nTo: {ALICE}\r\nMessage-ID: {mid}\r\n"
            f"Subject: {subject or f'message {n}'}\r\n\r\nbody number {n}\r\n").encode()


def frozen_copy(db: MailDatabase, path: Path) -> MailDatabase:
    """A copy of `db` as it is now, opened read-only, as a snapshot would be."""
    db.connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    shutil.copyfile(db.path, path)
    return MailDatabase.open(path, readonly=True)
