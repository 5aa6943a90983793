"""`cps browse`, `cps show` and `cps search`: looking at mail as it was at a point in time."""

from __future__ import annotations

import sys
from typing import Any
from urllib.parse import quote

import click

from ..errors import UsageError
from ..granular import folder_tree, mailboxes, search, show_message
from ..granular.browse import MOST_SKIPPED, folder_page, folder_row
from ..restore import format_ms, parse_time
from ..store import SearchQuery
from ..store.names import check_address, split_mailbox_path, split_path
from . import output
from .granular_options import Source, as_of, cut, day_time, describe, place, source_options
from .remote import Positional


@click.command("browse")
@source_options(point=True, after=(Positional("mailbox_path", "MAILBOX[/FOLDER]", False),))
@click.option("--limit", type=click.IntRange(min=1, max=MOST_SKIPPED), default=100, show_default=True,
              help="Messages to list at most.")
@click.option("--offset", type=click.IntRange(min=0, max=MOST_SKIPPED), default=0, show_default=True,
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
    address, path = split_mailbox_path(mailbox_path) if mailbox_path else (None, ())
    if source.client is not None:
        data = _browse_on_server(source, address, path, limit, offset)
    else:
        with source.open() as snapshot:
            data = {"point": describe(snapshot)}
            if address is None:
                data["mailboxes"] = [m.as_dict() for m in mailboxes(snapshot.database)]
            elif not path:
                data["mailbox"] = address
                data["folders"] = [folder_row(f) for f in folder_tree(snapshot.database, address)]
            else:
                data |= folder_page(snapshot.database, address, path, limit=limit,
                                    offset=offset)
    output.emit(data, as_json, lambda d: as_of(d["point"]) + "\n" + _render_listing(d))


def _browse_on_server(source: Source, address: str | None, path: tuple[str, ...], limit: int,
                      offset: int) -> dict[str, Any]:
    client, mail = source.mail_api()
    if address is None:
        return dict(client.get(f"{mail}/mailboxes", point=source.point()))
    if not path:
        return dict(client.get(f"{mail}/mailboxes/{quote(address, safe='@')}/folders",
                               point=source.point()))
    return dict(client.get(f"{mail}/mailboxes/{quote(address, safe='@')}/messages",
                           point=source.point(), folder=list(path), limit=limit, offset=offset))


@click.command("show")
@source_options(point=True, after=(Positional("mailbox_path", "MAILBOX[/FOLDER]"),
                                   Positional("selector", "MESSAGE")))
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
    if source.client is not None:
        client, mail = source.mail_api()
        where = f"{mail}/mailboxes/{quote(address, safe='@')}/messages/{quote(selector, safe='')}"
        if raw:
            client.copy_to(where, sys.stdout.buffer, point=source.point(), folder=list(path),
                           raw="true")
            return
        data = client.get(where, point=source.point(), folder=list(path))
    else:
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
@click.option("--limit", type=click.IntRange(min=1, max=MOST_SKIPPED), default=100, show_default=True,
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
    address = check_address(mailbox) if mailbox else None
    path = split_path(folder) if folder else ()
    if source.client is not None:
        client, mail = source.mail_api()
        data = client.get(f"{mail}/search", point=source.point(), text=text, **{"from": sender},
                          to=recipient, subject=subject, since=since and _utc(since),
                          before=before and _utc(before), has_attachment=has_attachment,
                          mailbox=address, folder=list(path), limit=limit)
    else:
        query = SearchQuery(
            text=text, from_=sender, to=recipient, subject=subject,
            since=parse_time(since) // 1000 if since else None,
            before=parse_time(before) // 1000 if before else None,
            has_attachment=has_attachment, limit=limit)
        with source.open() as snapshot:
            hits = search(snapshot.database, query, mailbox=address, folder=path)
            data = {"point": describe(snapshot), "hits": [hit.as_dict() for hit in hits]}
    output.emit(data, as_json, lambda d: as_of(d["point"]) + "\n" + _render_hits(d["hits"]))


def _utc(text: str) -> str:
    """A time as this machine reads it (its zone, its clock), for the server to read the same."""
    return format_ms(parse_time(text))


def _render_listing(data: dict[str, Any]) -> str:
    if "mailboxes" in data:
        return "\n".join(f"{r['address']:40} {r['folders']:4} folders {r['messages']:7} messages "
                         f"{r['unseen']:6} unseen" for r in data["mailboxes"])
    if "folders" in data:
        return "\n".join(
            f"{'  ' * (len(r['path']) - 1)}{r['path'][-1]:{max(1, 40 - 2 * len(r['path']))}} "
            f"{r['messages']:7} messages {r['unseen']:6} unseen" for r in data["folders"])
    shown = len(data["messages"])
    first = data["offset"] + 1
    count = (f"messages {first}..{first + shown - 1} of {data['total']}" if shown
             else f"no messages past {data['offset']} of {data['total']}")
    return "\n".join([*(_message_line(r) for r in data["messages"]), count])


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
