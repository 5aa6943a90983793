"""`cps browse`, `cps show` and `cps search`: looking at mail as it was at a point in time."""

from __future__ import annotations

import sys
from typing import Any

import click

from ..errors import UsageError
from ..granular import folder_tree, mailboxes, search, show_message
from ..granular.browse import message_row
from ..restore import parse_time
from ..store import SearchQuery
from ..store.names import check_address, split_mailbox_path, split_path
from . import output
from .granular_options import Source, as_of, cut, day_time, describe, place, source_options


@click.command("browse")
@source_options(point=True)
@click.argument("mailbox_path", metavar="[MAILBOX[/FOLDER]]", required=False)
@click.option("--limit", type=click.IntRange(min=1), default=100, show_default=True,
              help="Messages to list at most.")
@click.option("--offset", type=click.IntRange(min=0), default=0, show_default=True,
              help="Messages to skip first (in UID order).")
@output.json_option
def browse_command(source: Source, mailbox_path: str | None, limit: int, offset: int,
                   as_json: bool) -> None:
    """List the mailboxes, a mailbox's folder tree, or a folder's messages as they were at a point
    in time, including mailboxes and folders deleted since. Exactly one of --latest, --at,
    --recovery-point, --txn is needed. The point is read straight from the repository, without
    restoring the database.

    Examples:

    \b
      cps browse /backup/cps --db mail01 --recovery-point "before upgrade"
      cps browse /backup/cps --at "2h ago" alice@example.com
      cps browse /backup/cps --txn 1234 "alice@example.com/Inbox/Projects" --limit 20 --json
    """
    with source.open() as snapshot:
        data: dict[str, Any] = {"point": describe(snapshot)}
        if mailbox_path is None:
            data["mailboxes"] = [m.as_dict() for m in mailboxes(snapshot.database)]
        else:
            address, path = split_mailbox_path(mailbox_path)
            data["mailbox"] = address
            if not path:
                data["folders"] = [_folder_row(f) for f in folder_tree(snapshot.database, address)]
            else:
                data["folder"] = list(path)
                listed = snapshot.database.messages(address, path, limit=limit, offset=offset)
                data["messages"] = [message_row(m) for m in listed]
        heading = as_of(snapshot)
    output.emit(data, as_json, lambda d: heading + "\n" + _render_listing(d))


@click.command("show")
@source_options(point=True)
@click.argument("mailbox_path", metavar="MAILBOX[/FOLDER]")
@click.argument("selector", metavar="MESSAGE")
@click.option("--raw", is_flag=True, help="Write the message's raw bytes to stdout, unchanged.")
@output.json_option
def show_command(source: Source, mailbox_path: str, selector: str, raw: bool, as_json: bool) -> None:
    """Show one message as it was at a point in time: headers, text and attachment list, or its
    raw bytes. MESSAGE is a UID in FOLDER, or a Message-ID such as '<abc@host>' (looked for in
    FOLDER and below, or in the whole mailbox).

    Examples:

    \b
      cps show /backup/cps --recovery-point nightly alice@example.com/Inbox 42
      cps show /backup/cps --at "2026-11-22 18:00" alice@example.com "<abc@example.org>" --raw > m.eml
    """
    address, path = split_mailbox_path(mailbox_path)
    with source.open() as snapshot:
        view = show_message(snapshot.database, address, path, selector)
        if raw:
            sys.stdout.buffer.write(view.raw)
            sys.stdout.buffer.flush()
            return
        data = {"point": describe(snapshot), "message": view.as_dict()}
    output.emit(data, as_json, lambda d: _render_message(d["message"]))


@click.command("search")
@source_options(point=True)
@click.option("--text", help="Words anywhere in the message (a trailing * matches a prefix).")
@click.option("--from", "sender", help="Words in the sender.")
@click.option("--to", "recipient", help="Words in the recipients (To and Cc).")
@click.option("--subject", help="Words in the subject.")
@click.option("--since", metavar="TIME", help="Received at or after TIME.")
@click.option("--before", metavar="TIME", help="Received before TIME.")
@click.option("--has-attachment/--no-attachment", default=None,
              help="Only messages with (or without) attachments.  [default: either]")
@click.option("--mailbox", help="Search this mailbox only.  [default: every mailbox]")
@click.option("--folder", help="With --mailbox: this folder and its subfolders only.")
@click.option("--limit", type=click.IntRange(min=1), default=100, show_default=True,
              help="Hits to show at most, newest first.")
@output.json_option
def search_command(source: Source, text: str | None, sender: str | None, recipient: str | None,
                   subject: str | None, since: str | None, before: str | None,
                   has_attachment: bool | None, mailbox: str | None, folder: str | None,
                   limit: int, as_json: bool) -> None:
    """Search mail as it was at a point in time, with the full-text index of that moment. Every
    criterion given must match; words match whole words, a trailing * a prefix.

    Examples:

    \b
      cps search /backup/cps --at "1d ago" --text "quarterly budget" --mailbox alice@example.com
      cps search /backup/cps --recovery-point nightly --from carol --subject "invoice*" --json
      cps search /backup/cps --latest --since "2026-11-01" --has-attachment
    """
    if folder and not mailbox:
        raise UsageError("--folder needs --mailbox", hint="Name the mailbox the folder is in.")
    query = SearchQuery(
        text=text, from_=sender, to=recipient, subject=subject,
        since=parse_time(since) // 1000 if since else None,
        before=parse_time(before) // 1000 if before else None,
        has_attachment=has_attachment, limit=limit)
    address = check_address(mailbox) if mailbox else None
    path = split_path(folder) if folder else ()
    with source.open() as snapshot:
        hits = search(snapshot.database, query, mailbox=address, folder=path)
        data = {"point": describe(snapshot), "hits": [hit.as_dict() for hit in hits]}
        heading = as_of(snapshot)
    output.emit(data, as_json, lambda d: heading + "\n" + _render_hits(d["hits"]))


def _folder_row(folder: Any) -> dict[str, Any]:
    return {"id": folder.id, "path": list(folder.path), "role": folder.role,
            "messages": folder.messages, "unseen": folder.unseen,
            "uidvalidity": folder.uidvalidity, "uidnext": folder.uidnext}


def _render_listing(data: dict[str, Any]) -> str:
    if "mailboxes" in data:
        return "\n".join(f"{r['address']:40} {r['folders']:4} folders {r['messages']:7} messages "
                         f"{r['unseen']:6} unseen" for r in data["mailboxes"])
    if "folders" in data:
        return "\n".join(
            f"{'  ' * (len(r['path']) - 1)}{r['path'][-1]:{max(1, 40 - 2 * len(r['path']))}} "
            f"{r['messages']:7} messages {r['unseen']:6} unseen" for r in data["folders"])
    return "\n".join(_message_line(r) for r in data["messages"])


def _message_line(row: dict[str, Any]) -> str:
    return (f"{row['uid']:6} {day_time(row['date'])} {cut(row['from'], 28):28} "
            f"{cut(row['subject'], 50):50} {row['size']:8} {' '.join(row['flags'])}")


def _render_hits(hits: list[dict[str, Any]]) -> str:
    return "\n".join(f"{cut(place(h['mailbox'], h['folder']), 36):36} {_message_line(h)}"
                     for h in hits) or "no messages match"


_HEADERS = (("from", "From"), ("to", "To"), ("cc", "Cc"), ("subject", "Subject"),
            ("message_id", "Message-ID"))


def _render_message(row: dict[str, Any]) -> str:
    lines = [f"{'Folder':11} {place(row['mailbox'], row['folder'])} UID {row['uid']}"]
    lines += [f"{label:11} {row[key]}" for key, label in _HEADERS if row[key]]
    lines += [f"{'Date':11} {day_time(row['date'])}", f"{'Flags':11} {' '.join(row['flags'])}",
              f"{'Size':11} {row['size']}", "", row["text"].strip()]
    if row["attachments"]:
        lines += ["", "Attachments:"]
        lines += [f"  {a['filename'] or '(unnamed)'}  {a['content_type']}  {a['size']} bytes"
                  for a in row["attachments"]]
    return "\n".join(lines)
