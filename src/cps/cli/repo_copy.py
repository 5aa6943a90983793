"""`cps repo copy`: a repository copied to another folder or bucket, or its copy brought up to
date."""

from __future__ import annotations

from typing import Any

import click

from ..config import Location
from ..repository import CopyReport, copy_repository
from . import output
from .progress import progress_reporter
from .repo_options import RepositoryLocation, s3_options, with_s3_options


@click.command("copy")
@click.argument("source", metavar="SRC", type=RepositoryLocation())
@click.argument("destination", metavar="DST", type=RepositoryLocation())
@s3_options
@click.option("--db", "db_ids", multiple=True, metavar="ID",
              help="Copy only this database (repeatable), with every page pack.  [default: all]")
@output.json_option
def repo_copy_command(source: Location, destination: Location, db_ids: tuple[str, ...],
                      as_json: bool) -> None:
    """Copy the repository SRC to DST (a new or empty folder or prefix, or an earlier copy of
    SRC), or bring the copy up to date: only files DST lacks, and the status and recovery points
    that changed, are copied. Each file is checked whole before it is written; a damaged one is
    reported and not copied, every sound one is, and the exit status is 14. Files are copied as
    stored: an encrypted repository stays encrypted and needs no passphrase. Safe to interrupt:
    run it again to finish. The --s3-* options apply to both when both are buckets.

    Examples:

    \b
      cps repo copy /backup/cps s3://offsite/cps
      cps repo copy s3://offsite/cps /restore-here/cps --db mail01
    """
    with progress_reporter(enabled=not as_json) as progress:
        report = copy_repository(with_s3_options(source), with_s3_options(destination),
                                 db_ids=db_ids or None, progress=progress)
    output.emit(report.to_json(), as_json, _render)
    _fail_unless_whole(report)


def _fail_unless_whole(report: CopyReport) -> None:
    """The copy's failures, after its result: every sound file was copied all the same."""
    for message in report.damaged:
        output.note(f"not copied: {message}")
    for where in report.conflicts:
        output.note(f"kept: {where} differs from the source's file of that name")
    failure = report.failure()
    if failure is not None:
        raise failure


def _render(d: dict[str, Any]) -> str:
    text = (f"copied {output.counted(d['copied'], 'file')} ({d['copied_bytes'] / (1 << 20):.1f} "
            f"MiB) of {d['files']} from {d['source']} to {d['destination']}; "
            f"{d['unchanged']} already there")
    if d["updated"]:
        text += f", {d['updated']} updated"
    if d["vanished"]:
        text += f", {d['vanished']} deleted at the source meanwhile"
    for where in d["repaired"]:
        text += f"\nreplaced the damaged copy {where}"
    return text
