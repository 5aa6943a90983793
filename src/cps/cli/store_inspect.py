"""`cps store ls | show | stats | dump`: looking into a mail database without changing it."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from ..store import MailDatabase, Message
from ..store.dump import dump_lines
from ..store.names import split_mailbox_path
from ..store.parse import parse_envelope
from . import output
from .output import counted, emit
from .targets import database_argument, open_db, resolve_messages

# The labels `show` prints, in order.
SHOWN_FIELDS = {"from": "From", "to": "To", "cc": "Cc", "subject": "Subject", "date": "Date",
                "message_id": "Message-ID"}


@click.command("ls")
@database_argument()
@click.argument("mailbox_path", metavar="[MAILBOX[/FOLDER]]", required=False)
@click.option("--limit", default=100, show_default=True, help="Messages to list at most.")
@output.json_option
def ls_command(db: Path, mailbox_path: str | None, limit: int, as_json: bool) -> None:
    """List mailboxes, a mailbox's folder tree with counts, or a folder's messages.

    Examples:

    \b
      cps store ls mail.db
      cps store ls mail.db alice@example.com
      cps store ls mail.db alice@example.com/Inbox --limit 20
    """
    with open_db(db, readonly=True) as database:
        if mailbox_path is None:
            rows = _mailbox_rows(database)
            emit(rows, as_json, _render_mailboxes)
            return
        address, path = split_mailbox_path(mailbox_path)
        if not path:
            folders = [
                {"path": list(f.path), "role": f.role, "messages": f.messages,
                 "unseen": f.unseen, "uidvalidity": f.uidvalidity, "uidnext": f.uidnext}
                for f in database.folders(address)
            ]
            emit(folders, as_json, _render_folders)
            return
        messages = [_message_row(m) for m in database.messages(address, path, limit=limit)]
    emit(messages, as_json, _render_messages)


@click.command("show")
@database_argument()
@click.argument("mailbox_path", metavar="MAILBOX/FOLDER")
@click.argument("uid", type=int)
@click.option("--raw", is_flag=True, help="Write the message's raw bytes to stdout, unchanged.")
@output.json_option
def show_command(db: Path, mailbox_path: str, uid: int, raw: bool, as_json: bool) -> None:
    """Show one message: headers, text and attachment list, or its raw bytes.

    Examples:

    \b
      cps store show mail.db alice@example.com/Inbox 42
      cps store show mail.db alice@example.com/Inbox 42 --raw > message.eml
    """
    with open_db(db, readonly=True) as database:
        _address, (message_id,) = resolve_messages(database, mailbox_path, (uid,))
        body = database.fetch_raw(message_id)
        if raw:
            sys.stdout.buffer.write(body)
            sys.stdout.buffer.flush()
            return
        message = database.message(message_id)
        attachments = database.attachments(message_id)
    shown = _message_row(message) | {
        "to": message.to, "cc": message.cc, "message_id": message.message_id,
        "sha256": message.sha256, "text": parse_envelope(body).text,
        "attachments": [{"filename": f, "content_type": t, "size": s} for f, t, s in attachments],
    }
    emit(shown, as_json, _render_message)


@click.command("stats")
@database_argument()
@output.json_option
def stats_command(db: Path, as_json: bool) -> None:
    """Counts and sizes of a mail database.

    Examples:

    \b
      cps store stats mail.db --json
    """
    with open_db(db, readonly=True) as database:
        stats = database.stats()
    data = {name: getattr(stats, name) for name in stats.__slots__}
    emit(data, as_json, lambda d: "\n".join(f"{k:18} {v}" for k, v in d.items()))


@click.command("dump")
@database_argument()
@click.option("--output", "-o", "target", type=click.Path(dir_okay=False, path_type=Path),
              help="Write to this file instead of stdout.")
def dump_command(db: Path, target: Path | None) -> None:
    """Print the canonical dump of a database's logical content: mailboxes, folders and messages
    (UIDs, flags, dates, body hashes) in a stable order. Two databases with the same content print
    the same bytes; compare a restored database with its original this way.

    Examples:

    \b
      cps store dump mail.db > before.txt
      cps store dump restored.db | diff before.txt -
    """
    with open_db(db, readonly=True) as database:
        if target is None:
            for line in dump_lines(database.connection):
                sys.stdout.write(line)
            return
        with target.open("w", encoding="utf-8") as handle:
            handle.writelines(dump_lines(database.connection))


def _mailbox_rows(database: MailDatabase) -> list[dict[str, Any]]:
    rows = []
    for mailbox in database.mailboxes():
        folders = database.folders(mailbox.address)
        rows.append({
            "address": mailbox.address, "display_name": mailbox.display_name,
            "folders": len(folders), "messages": sum(f.messages for f in folders),
            "unseen": sum(f.unseen for f in folders),
        })
    return rows


def _message_row(message: Message) -> dict[str, Any]:
    return {
        "uid": message.uid, "date": _iso(message.internal_date), "from": message.from_,
        "subject": message.subject, "size": message.size, "flags": sorted(message.flags),
    }


def _iso(seconds: int) -> str:
    try:
        return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M")
    except (OverflowError, OSError, ValueError):
        return str(seconds)


def _render_mailboxes(rows: list[dict[str, Any]]) -> str:
    return "\n".join(
        f"{r['address']:40} {counted(r['folders'], 'folder', width=4)} "
        f"{counted(r['messages'], 'message', width=7)} {r['unseen']:6} unseen" for r in rows)


def _render_folders(rows: list[dict[str, Any]]) -> str:
    return "\n".join(
        f"{'  ' * (len(r['path']) - 1)}{r['path'][-1]:{max(1, 40 - 2 * len(r['path']))}} "
        f"{counted(r['messages'], 'message', width=7)} {r['unseen']:6} unseen" for r in rows)


def _render_messages(rows: list[dict[str, Any]]) -> str:
    return "\n".join(
        f"{r['uid']:6} {r['date']} {_cut(r['from'], 28):28} {_cut(r['subject'], 50):50} "
        f"{r['size']:8} {' '.join(r['flags'])}" for r in rows)


def _render_message(row: dict[str, Any]) -> str:
    lines = [f"{label:11} {row[key]}" for key, label in SHOWN_FIELDS.items() if row[key]]
    lines += [f"{'Flags':11} {' '.join(row['flags'])}", f"{'Size':11} {row['size']}", ""]
    lines.append(row["text"].strip())
    if row["attachments"]:
        lines += ["", "Attachments:"]
        lines += [f"  {a['filename'] or '(unnamed)'}  {a['content_type']}  {counted(a['size'], 'byte')}"
                  for a in row["attachments"]]
    return "\n".join(lines)


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"
