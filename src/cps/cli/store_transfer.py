"""`cps store import | export`: moving mail between a mail database and Maildir, mbox or .eml."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from ..store.names import split_mailbox_path, split_path
from ..store.transfer import (
    Format,
    ImportProgress,
    ImportReport,
    Progress,
    Quoting,
    export_mail,
    import_mail,
)
from ..store.transfer.importer import BATCH_MESSAGES
from . import output
from .output import counted, emit, note
from .progress import mail_progress, progress_reporter, shows_progress
from .targets import database_argument, open_db

# Most problems shown in the text report; --json lists them all.
SHOWN_PROBLEMS = 50


@click.command("import")
@database_argument()
@click.argument("source", type=click.Path(exists=True, path_type=Path))
@click.option("--mailbox", "address", required=True, help="Address of the mailbox to import into.")
@click.option("--folder", default="Inbox", show_default=True,
              help="Target folder path (created if missing); the source's folders go below it.")
@click.option("--format", "kind", type=click.Choice([f.value for f in Format]), default="auto",
              show_default=True, help="Source format; auto: a directory with cur/ or new/ is a "
              "Maildir, a file starting with 'From ' an mbox, anything else .eml.")
@click.option("--mbox-quoting", type=click.Choice([q.value for q in Quoting]), default="mboxrd",
              show_default=True, help="How the mbox quotes body lines starting with 'From '.")
@click.option("--create-mailbox", is_flag=True, help="Create the mailbox if it does not exist.")
@click.option("--batch", "batch_messages", type=click.IntRange(min=1), default=BATCH_MESSAGES,
              show_default=True, help="Messages committed per transaction.")
@click.option("--workers", type=click.IntRange(min=0), default=None,
              help="Processes parsing messages while this one writes (0: parse in this one). "
              "Default: one per CPU core but one, the writer's.")
@output.json_option
def import_command(
    db: Path, source: Path, address: str, folder: str, kind: str, mbox_quoting: str,
    create_mailbox: bool, batch_messages: int, workers: int | None, as_json: bool,
) -> None:
    """Import mail from SOURCE: a Maildir (with Maildir++ subfolders), an mbox file, a directory
    of mbox files (--format mbox; each file is a folder), a directory tree of .eml files (each
    subdirectory a folder) or one .eml file.

    Running the same import again imports nothing twice (a message once imported into this
    folder is not imported again, even if it was deleted since), and an interrupted import
    resumes where it stopped. A file that cannot be imported is reported and the import goes on;
    the exit status is 0 even then, so check "rejected" in the report.

    Examples:

    \b
      cps store import mail.db ~/Maildir --mailbox alice@example.com
      cps store import mail.db archive.mbox --mailbox alice@example.com --folder Archive/2001
      cps store import mail.db exported/ --format eml --mailbox bob@example.com --create-mailbox --json
    """
    if workers is None:
        workers = (os.cpu_count() or 1) - 1
    with open_db(db) as database, _import_progress(as_json=as_json) as progress:
        report = import_mail(
            database, source, address, split_path(folder), kind=Format(kind),
            quoting=Quoting(mbox_quoting), create_mailbox=create_mailbox, workers=workers,
            batch_messages=batch_messages, progress=progress,
        )
    if not as_json:
        _note_problems(report)
    emit(report.as_dict(), as_json, _render_import)


@click.command("export")
@database_argument()
@click.argument("mailbox_path", metavar="MAILBOX[/FOLDER]")
@click.argument("destination", metavar="DEST", type=click.Path(path_type=Path))
@click.option("--format", "kind", required=True,
              type=click.Choice([f.value for f in Format if f is not Format.AUTO]),
              help="maildir (Maildir++), mbox (one mboxrd file per folder) or eml (one file per "
              "message, one directory per folder).")
@output.json_option
def export_command(db: Path, mailbox_path: str, destination: Path, kind: str, as_json: bool) -> None:
    """Export a folder with its subfolders, or a whole mailbox, to DEST, a new or empty directory.

    Message bytes are written exactly as stored (mbox adds a final line break to a message that
    lacks one, the one change mbox forces); file mtimes are the internal dates. Maildir keeps the
    flags. An mbox export is a directory with one file per folder: import it back with
    --format mbox.

    Examples:

    \b
      cps store export mail.db alice@example.com/Inbox /backup/alice-inbox --format maildir
      cps store export mail.db alice@example.com /backup/alice-mbox --format mbox --json
    """
    address, folder = split_mailbox_path(mailbox_path)
    with open_db(db, readonly=True) as database, _progress("exporting", as_json=as_json) as progress:
        report = export_mail(database, address, folder, destination, Format(kind),
                             progress=progress and (lambda _stage, done, total: progress(done, total)))
    emit(report.as_dict(), as_json, _render_export)


@contextmanager
def _progress(stage: str, *, as_json: bool) -> Iterator[Progress | None]:
    """A progress callback drawing a bar labelled `stage` on a terminal, or None when no bar is
    drawn (then the command does not count what it has to do)."""
    if not shows_progress(enabled=not as_json):
        yield None
        return
    with progress_reporter(enabled=True) as report:
        yield lambda done, total: report(stage, done, total)


@contextmanager
def _import_progress(*, as_json: bool) -> Iterator[ImportProgress | None]:
    """The import's bar, with messages/s and MB/s, or None when no bar is drawn."""
    if not shows_progress(enabled=not as_json):
        yield None
        return
    with mail_progress("importing") as report:
        yield report


def _note_problems(report: ImportReport) -> None:
    errors = [p for p in report.problems if p.severity == "error"]
    for problem in errors[:SHOWN_PROBLEMS]:
        note(f"{problem.where}: {problem.reason}")
    if len(errors) > SHOWN_PROBLEMS:
        note(f"... and {counted(len(errors) - SHOWN_PROBLEMS, 'more problem')} (see --json)")
    warnings = len(report.problems) - len(errors)
    if warnings:
        note(f"{counted(warnings, 'imported message has', 'imported messages have')} parse "
             "defects (see --json)")


def _render_import(report: dict[str, Any]) -> str:
    rate = report["imported_bytes"] / report["seconds"] / 1e6 if report["seconds"] else 0.0
    return (
        f"imported {report['imported']} of {counted(report['found'], 'message')} into "
        f"{report['mailbox']}/{report['folder']} ({report['skipped_already_imported']} imported "
        f"before, {report['rejected']} rejected; {counted(report['imported_bytes'], 'byte')} in "
        f"{report['seconds']:.1f} s, {rate:.1f} MB/s)"
    )


def _render_export(report: dict[str, Any]) -> str:
    source = report["mailbox"] + (f"/{report['folder']}" if report["folder"] else "")
    return (
        f"exported {counted(report['messages'], 'message')} in "
        f"{counted(report['folders'], 'folder')} of {source} to {report['destination']} as "
        f"{report['format']}"
    )
