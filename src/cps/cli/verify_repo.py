"""`cps verify repo`: check a backup repository's files, chains and recovery points."""

from __future__ import annotations

from pathlib import Path

import click

from ..config import Location
from ..errors import TargetDamaged
from ..restore import format_ms
from ..verify import Lost, RepoFinding, RepoReport, check_repository
from . import output
from .output import counted, emit
from .repo_options import (
    db_option,
    open_repository,
    passphrase_file_option,
    pick_database,
    repository_argument,
)


@click.command("repo")
@repository_argument()
@db_option()
@click.option("--read-all", is_flag=True,
              help="Read every byte: every file against its checksum, every page of every pack "
                   "against its content address, every segment decoded. Without it, only what "
                   "is cheap is read: small files, full backups, segment headers, pack indexes.")
@passphrase_file_option
@output.json_option
def repo_command(repo_path: Location, db_id: str | None, read_all: bool,
                 passphrase_file: Path | None, as_json: bool) -> None:
    """Check a backup repository: its files, that every chain is continuous from its full
    backup to its last segment, and that every recovery point can be restored. Each problem is
    printed with its kind, its file, the transactions and times it makes unrestorable, and what
    to do. Exit status 0: no problem; 32 (damaged): problems found. Nothing is written; prune
    waits while the check runs. Every database is checked unless --db names one (the packs,
    which databases share, are always all checked).

    Examples:

    \b
      cps verify repo /backup/cps
      cps verify repo /backup/cps --db mail01 --read-all
      cps verify repo s3://backups/cps --json
    """
    repo = open_repository(repo_path, passphrase_file)
    report = check_repository(repo, pick_database(repo, db_id) if db_id else None,
                              read_all=read_all)
    emit(report.to_json(), as_json, lambda _data: _render(report))
    if not report.clean:
        raise TargetDamaged(f"{counted(len(report.findings), 'problem')} in {report.location}",
                            hint="Each problem printed says what it makes unrestorable and what "
                                 "to do. Nothing was changed.")


def _render(report: RepoReport) -> str:
    depth = "every byte read" if report.read_all else "headers and indexes; --read-all reads every byte"
    if report.clean:
        lines = [f"{report.location}: no problems found ({depth})"]
    else:
        lines = [f"{report.location}: {counted(len(report.findings), 'problem')} found ({depth})"]
        lines += [line for finding in report.findings for line in _render_finding(finding)]
    checked = ", ".join(counted(number, kind) for kind, number in sorted(report.checked.items()))
    lines.append(f"checked: {checked or 'nothing'}")
    return "\n".join(lines)


def _render_finding(finding: RepoFinding) -> list[str]:
    lines = [f"  {finding.kind}  {finding.path}", f"    {finding.detail}"]
    if finding.lost is not None:
        lines.append(f"    lost: {_lost(finding.lost)}")
    return [*lines, f"    {finding.todo}"]


def _lost(lost: Lost) -> str:
    what = (f"transaction {lost.first_txn}" if lost.first_txn == lost.last_txn
            else f"transactions {lost.first_txn} to {lost.last_txn}")
    after = "" if lost.after_time is None else f" after {format_ms(lost.after_time)}"
    before = "" if lost.before_time is None else f" before {format_ms(lost.before_time)}"
    return f"{what} of chain {lost.chain}{after}{before or ', to the end of the chain'}"
