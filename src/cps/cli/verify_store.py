"""`cps verify store`: check a mail database, and with --repair mend what loses no mail."""

from __future__ import annotations

from pathlib import Path

import click

from ..errors import StoreDamaged
from ..verify import Finding, StoreReport, check_store, repair_store
from . import output
from .output import counted, emit
from .targets import database_argument


@click.command("store")
@database_argument()
@click.option("--repair", is_flag=True,
              help="Repair what can be repaired without losing mail (indexes, the full-text "
                   "index, cached sizes, UIDNEXT, broken folder links), in one transaction, and "
                   "check again.")
@click.option("--quick", is_flag=True,
              help="Use SQLite's quick_check, which does not compare indexes with their tables, "
                   "instead of integrity_check.")
@output.json_option
def store_command(db: Path, repair: bool, quick: bool, as_json: bool) -> None:
    """Check a mail database: the SQLite file (header, WAL mode, every page) and the mail in it
    (every body there and matching its SHA-256, folder trees, UIDs and UIDNEXT, cached sizes, the
    full-text index). Each problem is printed with its kind, the mailbox, folder or message it is
    about, and what to do. Exit status 0: no problem; 60 (damaged-store): problems remain.

    Nothing is written without --repair. The full-text index's own check holds the database's
    write lock while it runs (under a second for 1 GB). --repair never deletes mail and never
    writes to a file with damaged pages: a backup is the cure for those.

    Examples:

    \b
      cps verify store /var/lib/cps/mail01.db
      cps verify store mail01.db --json
      cps verify store mail01.db --repair
    """
    if repair:
        result = repair_store(db, quick=quick)
        emit(result.to_json(), as_json, lambda _data: _render_repair(
            result.repaired, result.refused) + _render_report(result.after))
        report = result.after
    else:
        report = check_store(db, quick=quick)
        emit(report.to_json(), as_json, lambda _data: _render_report(report))
    if not report.clean:
        raise StoreDamaged(f"{counted(len(report.findings), 'problem')} in {db}",
                           hint=_hint(report.findings, repaired=repair))


def _render_report(report: StoreReport) -> str:
    if report.clean:
        lines = [f"{report.path}: no problems found"]
    else:
        lines = [f"{report.path}: {counted(len(report.findings), 'problem')} found"]
        lines += [line for f in report.findings for line in _render_finding(f, report.path)]
    lines += [f"not checked: {what}" for what in report.unchecked]
    return "\n".join(lines)


def _render_finding(finding: Finding, path: Path) -> list[str]:
    todo = f"--repair {finding.repair}" if finding.repair else finding.remedy(path)
    return [f"  {finding.kind}  {finding.place}", f"    {finding.detail}", f"    {todo}"]


def _render_repair(repaired: tuple[Finding, ...], refused: str | None) -> str:
    if refused:
        return f"nothing repaired: {refused}\n"
    lines = [f"repaired {counted(len(repaired), 'problem')}"]
    lines += [f"  {f.kind}  {f.place}: {f.repair}" for f in repaired]
    return "\n".join(lines) + "\n"


def _hint(findings: tuple[Finding, ...], *, repaired: bool) -> str:
    repairable = sum(1 for f in findings if f.repair)
    if repairable and not repaired:
        return (f"{counted(repairable, 'problem')} can be repaired without losing mail: "
                "cps verify store DB --repair. Each problem printed says what to do.")
    return ("Each problem printed says what to do: restore the database from backup "
            "(cps restore) or recover the message (cps recover). Nothing was deleted.")
