"""Arguments shared by the store commands: the database path, and messages named by folder + UID."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from ..errors import UsageError
from ..store import MailDatabase
from ..store.names import split_mailbox_path
from .paths import NewFile

F = TypeVar("F", bound=Callable[..., Any])


def database_argument(*, exists: bool = True) -> Callable[[F], F]:
    """The DB argument: a mail database file (that must exist, unless creating one)."""
    kind = click.Path(dir_okay=False, exists=True, path_type=Path) if exists else NewFile()
    return click.argument("db", metavar="DB", type=kind)


def open_db(db: Path, *, readonly: bool = False) -> MailDatabase:
    return MailDatabase.open(db, readonly=readonly)


def resolve_messages(
    database: MailDatabase, mailbox_path: str, uids: tuple[int, ...]
) -> tuple[str, list[int]]:
    """The mailbox address and message ids of the given UIDs in MAILBOX/FOLDER."""
    address, path = split_mailbox_path(mailbox_path)
    if not path:
        raise UsageError(f"{mailbox_path!r} names no folder", hint="Write MAILBOX/FOLDER UID...")
    return address, [database.message_by_uid(address, path, uid).id for uid in uids]
