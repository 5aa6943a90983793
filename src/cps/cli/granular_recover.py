"""`cps diff` and `cps recover`: what changed between points in time, and getting mail back."""

from __future__ import annotations

import os
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import click

from ..errors import UsageError
from ..granular import RecoverRequest, diff_databases, parse_point, recover_into
from ..restore import Target
from ..store import MailDatabase
from ..store.names import check_address, split_path
from ..store.transfer import Format, export_mail
from ..store.transfer import check_destination as check_export_destination
from . import output
from .granular_options import Source, as_of, cut, describe, place, source_options
from .progress import progress_reporter
from .remote import Positional, pick_server_database, run_job, unpack


@click.command("diff")
@source_options(point=False, after=(Positional("mailbox", "MAILBOX", False),))
@click.option("--from", "from_point", metavar="POINT", required=True,
              help="The earlier point: latest, txn:N, point:NAME, at:TIME or a time.")
@click.option("--to", "to_point", metavar="POINT", help="The later point, written the same way.")
@click.option("--live", "live_db", type=click.Path(dir_okay=False, path_type=Path),
              help="Compare with this mail database as it is now instead of a later point (with "
                   "--server, the server's database, by its path there).")
@output.json_option
def diff_command(source: Source, from_point: str, to_point: str | None, live_db: Path | None,
                 mailbox: str | None, as_json: bool) -> None:
    """Show what changed between two points in time, or between a point and the live database:
    mailboxes created and deleted; folders created, renamed or moved, deleted; messages added,
    deleted, moved between folders, and flags changed. With MAILBOX, that mailbox only.

    Messages are matched by their id and content, folders by their id and UIDVALIDITY, so a
    folder deleted and re-created under the same name shows as deleted and created.

    Examples:

    \b
      cps diff /backup/cps --db mail01 --from point:nightly --to latest
      cps diff /backup/cps --from "2026-11-22 09:00" --to "2026-11-22 12:00" alice@example.com
      cps diff /backup/cps --from txn:1200 --live /var/lib/cps/mail01.db --json
    """
    if (to_point is None) == (live_db is None):
        raise UsageError("give exactly one of --to and --live",
                         hint="--to POINT compares two points; --live DB compares with now.")
    address = check_address(mailbox) if mailbox else None
    earlier = parse_point(from_point)
    later = parse_point(to_point) if to_point is not None else None
    if source.client is not None:
        client, mail = source.mail_api()
        if live_db is not None:
            _server_database(source, live_db)
        data = client.get(f"{mail}/diff", **{"from": earlier.spec()},
                          to=later.spec() if later else None, live="true" if live_db else None,
                          mailbox=address)
    else:
        data = _diff_here(source, earlier, later, live_db, address)
    output.emit(data, as_json, lambda d: f"from {as_of(d['from'])}\nto " + (
        f"the live database {d['to']['live']}" if "live" in d["to"] else as_of(d["to"]))
        + "\n" + _render_diff(d))


def _diff_here(source: Source, earlier: Target, later: Target | None, live_db: Path | None,
               address: str | None) -> dict[str, Any]:
    with ExitStack() as stack:
        old = stack.enter_context(source.open(earlier))
        if live_db is not None:
            new = stack.enter_context(MailDatabase.open(_existing(live_db), readonly=True))
            to: dict[str, Any] = {"live": str(live_db)}
        else:
            assert later is not None
            snapshot = stack.enter_context(source.open(later))
            new, to = snapshot.database, describe(snapshot)
        diff = diff_databases(old.database, new, mailbox=address)
        return {"from": describe(old), "to": to, "mailbox": address} | diff.as_dict()


@click.command("recover")
@source_options(point=True)
@click.option("--mailbox", required=True, help="The mailbox to recover from, as it was.")
@click.option("--folder", help="Recover this folder with its subfolders.  [default: the whole "
                               "mailbox]")
@click.option("--message", "selectors", metavar="MESSAGE", multiple=True,
              help="Recover only this message: a UID in --folder, or a Message-ID such as "
                   "'<abc@host>'. May be repeated.")
@click.option("--into", "live_db", type=click.Path(dir_okay=False, path_type=Path),
              help="Add the mail to this live mail database (with --server, the server's "
                   "database, by its path there).")
@click.option("--target-mailbox", help="With --into: the live mailbox to add to (it must exist).  "
                                       "[default: --mailbox]")
@click.option("--merge", is_flag=True, help="With --into: put messages back into their original "
              "folders instead of 'Recovered Items/<point>/'.")
@click.option("--batch", type=click.IntRange(min=1), default=500, show_default=True,
              help="With --into: messages added per transaction.")
@click.option("--export", "export_to", nargs=2, metavar="FORMAT DIR",
              type=(click.Choice([f.value for f in Format if f is not Format.AUTO]),
                    click.Path(file_okay=False, path_type=Path)),
              help="Write the mail as maildir, mbox or eml files into DIR, a new or empty folder.")
@output.json_option
def recover_command(source: Source, mailbox: str, folder: str | None, selectors: tuple[str, ...],
                    live_db: Path | None, target_mailbox: str | None, merge: bool, batch: int,
                    export_to: tuple[str, Path] | None, as_json: bool) -> None:
    """Recover messages, a folder with its subfolders, or a whole mailbox as they were at a point
    in time: into a live mail database (--into), or out to files (--export).

    Into the live database nothing is changed or removed: by default the mail goes to
    'Recovered Items/<point>/<original folder path>' of the mailbox (the point is its recovery
    point name, or 'txn N'); --merge puts it back into the original folders, creating missing
    ones. Bytes, flags and internal dates are kept; a message already in its target folder (same
    content) is skipped, so running a recovery again adds nothing. Mail keeps arriving meanwhile:
    messages are added in short transactions of --batch messages.

    Examples:

    \b
      cps recover /backup/cps --recovery-point nightly --mailbox alice@example.com \\
          --folder Projects --into /var/lib/cps/mail01.db
      cps recover /backup/cps --at "2026-11-22 09:00" --mailbox bob@example.com \\
          --into mail.db --target-mailbox bob.restored@example.com --merge
      cps recover /backup/cps --txn 1234 --mailbox alice@example.com \\
          --message "<abc@example.org>" --into mail.db
      cps recover /backup/cps --latest --mailbox alice@example.com --export mbox /tmp/alice
    """
    _check_destination(live_db, export_to, selectors, target_mailbox, merge)
    address = check_address(mailbox)
    path = split_path(folder) if folder else ()
    if source.client is not None and export_to is not None:
        data = _export_on_server(source, address, path, *export_to, as_json=as_json)
    elif source.client is not None:
        assert live_db is not None
        _server_database(source, live_db)
        client, mail = source.mail_api()
        job = client.post(f"{mail}/recoveries", {
            "point": source.point(), "mailbox": address, "folder": list(path),
            "messages": list(selectors), "target_mailbox": target_mailbox, "merge": merge,
            "batch": batch})
        data = run_job(client, job, as_json=as_json)
    else:
        data = _recover_here(source, address, path, selectors, live_db, target_mailbox, merge,
                             batch, export_to, as_json=as_json)
    output.emit(data, as_json, _render_recover)


def _recover_here(source: Source, address: str, path: tuple[str, ...], selectors: tuple[str, ...],
                  live_db: Path | None, target_mailbox: str | None, merge: bool, batch: int,
                  export_to: tuple[str, Path] | None, *, as_json: bool) -> dict[str, Any]:
    with source.open() as snapshot, progress_reporter(enabled=not as_json) as progress:
        if export_to is not None:
            kind, destination = export_to
            report = export_mail(snapshot.database, address, path, destination, Format(kind),
                                 progress)
            return {"point": describe(snapshot), "export": report.as_dict()}
        assert live_db is not None
        request = RecoverRequest(address, path, selectors, target_mailbox, merge, batch)
        with MailDatabase.open(_existing(live_db)) as live:
            recovered = recover_into(snapshot.database, snapshot.label, live, request, progress)
        return {"point": describe(snapshot), "recover": recovered.as_dict()}


def _export_on_server(source: Source, address: str, path: tuple[str, ...], kind: str,
                      destination: Path, *, as_json: bool) -> dict[str, Any]:
    """The server exports into one file (an mbox, or a zip of the tree), downloaded here and
    unpacked into `destination`, as a local export would have written it."""
    check_export_destination(destination)
    client, mail = source.mail_api()
    job = client.post(f"{mail}/exports", {"point": source.point(), "mailbox": address,
                                          "folder": list(path), "format": kind})
    result = run_job(client, job, as_json=as_json)
    destination.mkdir(parents=True, exist_ok=True)
    name = Path(result["file"]).name
    packed = destination / f".{name}.partial"
    client.download(f"/api/v1/jobs/{job['id']}/file", packed)
    if name.endswith(".zip"):
        unpack(packed, destination)
        packed.unlink()
    else:
        packed.replace(destination / name)
    return {"point": result["point"],
            "export": {**result["export"], "destination": str(destination)}}


def _server_database(source: Source, live_db: Path) -> None:
    """With --server, --into and --live name the server's own database (by its path there), so
    that the command says the same thing whichever way it runs."""
    client, _mail = source.mail_api()
    db_id = pick_server_database(client, source.db_id)
    there = str(client.get(f"/api/v1/databases/{db_id}")["path"])
    if str(live_db) != there and str(live_db.absolute()) != there:
        raise UsageError(f"the server's database {db_id} is {there}, not {live_db}",
                         hint="With --server, mail is recovered into (or compared with) the "
                              "database the server protects: give its path, or --db for "
                              "another.")


def _existing(path: Path) -> Path:
    """`path`, which must be there (an OSError saying why not)."""
    os.stat(path)
    return path


def _check_destination(live_db: Path | None, export_to: tuple[str, Path] | None,
                       selectors: tuple[str, ...], target_mailbox: str | None, merge: bool) -> None:
    if (live_db is None) == (export_to is None):
        raise UsageError("give exactly one of --into and --export",
                         hint="--into DB adds the mail to a live database; --export FORMAT DIR "
                              "writes files.")
    if export_to is not None and (selectors or target_mailbox or merge):
        raise UsageError("--message, --target-mailbox and --merge go with --into, not --export",
                         hint="Export works on whole folders and mailboxes; write one message "
                              "with 'cps show ... --raw'.")


def _render_recover(data: dict[str, Any]) -> str:
    if "export" in data:
        e = data["export"]
        return (f"exported {e['messages']} messages in {e['folders']} folders of "
                f"{place(e['mailbox'], e['folder'].split('/') if e['folder'] else [])} at "
                f"transaction {data['point']['txn']} to {e['destination']} as {e['format']}")
    r = data["recover"]
    return (f"recovered {r['recovered']} messages in {r['folders']} folders of {r['source']} "
            f"at transaction {data['point']['txn']} into "
            f"{place(r['target_mailbox'], r['target_folder'])} ({r['skipped_present']} already "
            f"there, {r['folders_created']} folders created, {r['seconds']:.1f} s)")


def _render_diff(data: dict[str, Any]) -> str:
    lines = [f"mailbox created  {a}" for a in data["mailboxes_created"]]
    lines += [f"mailbox deleted  {a}" for a in data["mailboxes_deleted"]]
    lines += [f"folder created   {place(f['mailbox'], f['path'])}" for f in data["folders_created"]]
    lines += [f"folder deleted   {place(f['mailbox'], f['path'])}" for f in data["folders_deleted"]]
    lines += [f"folder renamed   {place(f['mailbox'], f['from'])} -> {'/'.join(f['to'])}"
              for f in data["folders_renamed"]]
    lines += [f"+ added    {_where(m)}  {cut(m['subject'], 50)}" for m in data["messages_added"]]
    lines += [f"- deleted  {_where(m)}  {cut(m['subject'], 50)}" for m in data["messages_deleted"]]
    lines += [f"> moved    {_where(m['from'])} -> {'/'.join(m['to']['folder'])} UID "
              f"{m['to']['uid']}  {cut(m['subject'], 40)}" for m in data["messages_moved"]]
    lines += [f"~ flags    {_where(m['to'])}  {_flag_changes(m)}  {cut(m['subject'], 40)}"
              for m in data["flags_changed"]]
    counts = data["counts"]
    summary = ", ".join(f"{n} {name.replace('_', ' ')}" for name, n in counts.items() if n)
    return "\n".join([*lines, summary or "no changes"])


def _flag_changes(change: dict[str, Any]) -> str:
    return " ".join([f"+{flag}" for flag in change["added"]] + [f"-{flag}" for flag in change["removed"]])


def _where(message: dict[str, Any]) -> str:
    return f"{place(message['mailbox'], message['folder'])} UID {message['uid']}"
