"""`cps store` administration: create a database, manage mailboxes and folders, act on messages."""

from __future__ import annotations

from pathlib import Path

import click

from ..store import MailDatabase
from ..store.names import split_mailbox_path, split_path
from . import output
from .output import counted, emit, note
from .targets import database_argument, open_db, resolve_messages


@click.command("create")
@database_argument(exists=False)
@output.json_option
def create_command(db: Path, as_json: bool) -> None:
    """Create an empty mail database (one SQLite file in WAL mode) at DB.

    Examples:

    \b
      cps store create /var/lib/cps/mail01.db
    """
    with MailDatabase.create(db) as database:
        result = {"path": str(db), "database_id": database.database_id}
    emit(result, as_json, lambda r: f"created mail database {r['path']} ({r['database_id']})")


@click.group("mailbox")
def mailbox_group() -> None:
    """Create, delete and list mailboxes."""


@mailbox_group.command("create")
@database_argument()
@click.argument("address")
@click.option("--name", "display_name", default="", help="Display name.  [default: none]")
def mailbox_create(db: Path, address: str, display_name: str) -> None:
    """Create a mailbox with the standard folders (Inbox, Sent Items, Drafts, Deleted Items,
    Junk Email).

    Examples:

    \b
      cps store mailbox create mail.db alice@example.com --name "Alice Liddell"
    """
    with open_db(db) as database:
        mailbox = database.create_mailbox(address, display_name)
    note(f"created mailbox {mailbox.address}")


@mailbox_group.command("delete")
@database_argument()
@click.argument("address")
@click.option("--purge", is_flag=True, help="Also remove the mailbox's folders and messages now.")
def mailbox_delete(db: Path, address: str, purge: bool) -> None:
    """Delete a mailbox. Without --purge its mail is kept (disconnected) and the address is free
    for a new mailbox; with --purge its mail is removed for good.

    Examples:

    \b
      cps store mailbox delete mail.db bob@example.com --purge
    """
    with open_db(db) as database:
        database.delete_mailbox(address, purge=purge)
    note(f"deleted mailbox {address}" + (" and its mail" if purge else ""))


@mailbox_group.command("list")
@database_argument()
@click.option("--deleted", is_flag=True, help="Include deleted mailboxes.")
@output.json_option
def mailbox_list(db: Path, deleted: bool, as_json: bool) -> None:
    """List mailboxes.

    Examples:

    \b
      cps store mailbox list mail.db --json
    """
    with open_db(db, readonly=True) as database:
        rows = [
            {"address": m.address, "display_name": m.display_name, "created_at": m.created_at,
             "deleted_at": m.deleted_at}
            for m in database.mailboxes(include_deleted=deleted)
        ]
    emit(rows, as_json, lambda rs: "\n".join(
        r["address"] + (" (deleted)" if r["deleted_at"] else "") for r in rs))


@click.group("folder")
def folder_group() -> None:
    """Create, rename and delete folders."""


@folder_group.command("create")
@database_argument()
@click.argument("mailbox_path", metavar="MAILBOX/FOLDER")
@click.option("--parents", "-p", is_flag=True, help="Create missing parent folders too.")
def folder_create(db: Path, mailbox_path: str, parents: bool) -> None:
    """Create a folder, e.g. alice@example.com/Projects/2026.

    Examples:

    \b
      cps store folder create mail.db alice@example.com/Projects/2026 --parents
    """
    address, path = _mailbox_and_folder(mailbox_path)
    with open_db(db) as database:
        folder = database.create_folder(address, path, parents=parents)
    note(f"created folder {folder.path_text}")


@folder_group.command("rename")
@database_argument()
@click.argument("mailbox_path", metavar="MAILBOX/FOLDER")
@click.argument("new_path", metavar="NEW_PATH")
def folder_rename(db: Path, mailbox_path: str, new_path: str) -> None:
    """Rename or move a folder with its subfolders and messages (UIDs are kept). NEW_PATH is the
    full new path inside the same mailbox.

    Examples:

    \b
      cps store folder rename mail.db alice@example.com/Projects Archive/Projects-2025
    """
    address, path = _mailbox_and_folder(mailbox_path)
    with open_db(db) as database:
        folder = database.rename_folder(address, path, split_path(new_path))
    note(f"renamed to {folder.path_text}")


@folder_group.command("delete")
@database_argument()
@click.argument("mailbox_path", metavar="MAILBOX/FOLDER")
def folder_delete(db: Path, mailbox_path: str) -> None:
    """Delete a folder, its subfolders and their messages for good.

    Examples:

    \b
      cps store folder delete mail.db alice@example.com/Old
    """
    address, path = _mailbox_and_folder(mailbox_path)
    with open_db(db) as database:
        database.delete_folder(address, path)
    note(f"deleted folder {'/'.join(path)}")


@click.group("message")
def message_group() -> None:
    """Move, flag and delete messages, chosen by folder and UID."""


@message_group.command("move")
@database_argument()
@click.argument("mailbox_path", metavar="MAILBOX/FOLDER")
@click.argument("uids", nargs=-1, required=True, type=int)
@click.option("--to", "destination", required=True, help="Destination folder path.")
@click.option("--copy", "as_copy", is_flag=True, help="Copy instead of moving.")
def message_move(db: Path, mailbox_path: str, uids: tuple[int, ...], destination: str,
                 as_copy: bool) -> None:
    """Move (or copy) messages to another folder of the same mailbox.

    Examples:

    \b
      cps store message move mail.db alice@example.com/Inbox 3 4 --to Archive
    """
    with open_db(db) as database:
        address, ids = resolve_messages(database, mailbox_path, uids)
        action = database.copy if as_copy else database.move
        action(ids, address, split_path(destination))
    note(f"{'copied' if as_copy else 'moved'} {counted(len(ids), 'message')} to {destination}")


@message_group.command("flag")
@database_argument()
@click.argument("mailbox_path", metavar="MAILBOX/FOLDER")
@click.argument("uids", nargs=-1, required=True, type=int)
@click.option("--add", "add", multiple=True, help="Flag to set, e.g. '\\Seen' or a keyword.")
@click.option("--remove", "remove", multiple=True, help="Flag to clear.")
def message_flag(db: Path, mailbox_path: str, uids: tuple[int, ...], add: tuple[str, ...],
                 remove: tuple[str, ...]) -> None:
    """Set or clear flags (\\Seen \\Answered \\Flagged \\Deleted \\Draft, or keywords).

    Examples:

    \b
      cps store message flag mail.db alice@example.com/Inbox 7 --add '\\Flagged' --remove '\\Seen'
    """
    with open_db(db) as database:
        _address, ids = resolve_messages(database, mailbox_path, uids)
        database.set_flags(ids, add=add, remove=remove)
    note(f"changed flags of {counted(len(ids), 'message')}")


@message_group.command("delete")
@database_argument()
@click.argument("mailbox_path", metavar="MAILBOX/FOLDER")
@click.argument("uids", nargs=-1, required=True, type=int)
@click.option("--hard", is_flag=True, help="Remove for good instead of moving to Deleted Items.")
def message_delete(db: Path, mailbox_path: str, uids: tuple[int, ...], hard: bool) -> None:
    """Delete messages: to Deleted Items, or for good from there (or anywhere with --hard).

    Examples:

    \b
      cps store message delete mail.db alice@example.com/Inbox 12
    """
    with open_db(db) as database:
        _address, ids = resolve_messages(database, mailbox_path, uids)
        (database.expunge if hard else database.delete)(ids)
    note(f"deleted {counted(len(ids), 'message')}")


def _mailbox_and_folder(text: str) -> tuple[str, tuple[str, ...]]:
    address, path = split_mailbox_path(text)
    if not path:
        raise click.BadParameter(f"{text!r} names no folder; write MAILBOX/FOLDER")
    return address, path
