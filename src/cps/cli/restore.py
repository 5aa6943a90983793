"""`cps restore` and `cps timeline`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from ..client import ServerClient
from ..config import Location
from ..errors import UsageError
from ..ops import restore_database, timelines
from ..restore import Target, install_database, parse_time, refuse_existing
from . import output
from .paths import NewFile
from .progress import progress_reporter
from .remote import connect, pick_server_database, run_job, server_options
from .repo_options import (
    db_option,
    open_repository,
    passphrase_file_option,
    pick_database,
    repository_argument,
)

F = TypeVar("F", bound=Callable[..., Any])


def target_options(function: F) -> F:
    """--latest, --at, --recovery-point and --txn: one target (`parse_target`)."""
    for option in reversed([
        click.option("--latest", is_flag=True, help="The latest captured transaction."),
        click.option("--at", "at_time", metavar="TIME",
                     help="The last transaction committed at or before TIME: "
                          "2026-11-22T18:35:01.250Z, 2026-11-22 18:35 (local time) or 15m ago."),
        click.option("--recovery-point", "point", metavar="NAME",
                     help="A recovery point, by name."),
        click.option("--txn", type=int, help="A transaction number, as 'cps timeline' shows "
                                             "them."),
    ]):
        function = option(function)
    return function


@click.command("restore")
@repository_argument(required=False)
@db_option()
@click.option("--to", "output_path", required=True,
              type=NewFile(), help="The database file to write.")
@target_options
@click.option("--force", is_flag=True, help="Replace OUT if it exists.")
@click.option("--best-effort", is_flag=True,
              help="When a repository file is damaged, restore the latest point before it.")
@passphrase_file_option
@server_options
@output.json_option
def restore_command(repo_path: Location | None, db_id: str | None, output_path: Path, latest: bool,
                    at_time: str | None, point: str | None, txn: int | None, force: bool,
                    best_effort: bool, passphrase_file: Path | None, server: str | None,
                    token_file: Path | None, as_json: bool) -> None:
    """Write the database as it was at exactly one transaction into a new file, fsynced and
    checked with PRAGMA integrity_check. Exactly one target is needed. With --server, the
    server restores from its repository and the file is downloaded (checked against the
    server's checksum) to OUT.

    Examples:

    \b
      cps restore /backup/cps --db mail01 --to /tmp/mail01.db --latest
      cps restore /backup/cps --to old.db --at "2026-11-22T18:35:01.250Z"
      cps restore /backup/cps --to old.db --at "15m ago"
      cps restore /backup/cps --to old.db --recovery-point "before upgrade"
      cps restore --server http://127.0.0.1:8470 --token-file ~/.cps-token --db mail01 \\
          --to old.db --at "1h ago"
    """
    target = parse_target(latest, at_time, point, txn)
    client = connect(repo_path, server, token_file)
    if client is not None:
        with client:
            data = _restore_on_server(client, db_id, target, output_path, force=force,
                                      best_effort=best_effort, as_json=as_json)
    else:
        assert repo_path is not None
        repo = open_repository(repo_path, passphrase_file)
        name = pick_database(repo, db_id)
        with progress_reporter(enabled=not as_json) as progress:
            done = restore_database(repo, name, target, output_path, force=force,
                                    best_effort=best_effort, progress=progress)
        data = done.to_json()
    for note in data["passed_over"]:
        output.note(f"warning: {note}")
    if data["damaged"]:
        output.note(f"WARNING: NOT THE TARGET: {data['damaged']}. Restored transaction "
                    f"{data['txn']} instead, the latest state the repository proves before "
                    f"{data['target']}.")
    output.emit(data, as_json, lambda d: f"restored {d['db_id']} at transaction {d['txn']}"
                + (f" ({d['txn_time']})" if d["txn_time"] else "") + f" to {d['output']}"
                + ("" if d["exact"] else " (best effort: not the target)"))


def _restore_on_server(client: ServerClient, db_id: str | None, target: Target, output_path: Path,
                       *, force: bool, best_effort: bool, as_json: bool) -> dict[str, Any]:
    """A restore job on the server, then its file downloaded to `output_path`."""
    refuse_existing(output_path, force=force)
    name = pick_server_database(client, db_id)
    job = client.post(f"/api/v1/databases/{name}/restores",
                      {**target.to_json(), "best_effort": best_effort})
    result = run_job(client, job, as_json=as_json)
    partial = output_path.with_name(f"{output_path.name}.partial")
    partial.unlink(missing_ok=True)
    client.download(f"/api/v1/jobs/{job['id']}/file", partial, sha256=result["sha256"])
    install_database(partial, output_path)
    return {**result, "output": str(output_path), "server": client.url, "job": job["id"]}


@click.command("timeline")
@repository_argument(required=False)
@db_option()
@passphrase_file_option
@server_options
@output.json_option
def timeline_command(repo_path: Location | None, db_id: str | None, passphrase_file: Path | None,
                     server: str | None, token_file: Path | None, as_json: bool) -> None:
    """Show what a repository can restore: chains, full backups, recovery points, gaps, the
    earliest and latest restorable times, and the current capture lag. With --server, the
    timelines of the databases the server protects.

    Examples:

    \b
      cps timeline /backup/cps
      cps timeline /backup/cps --db mail01 --json
      cps timeline --server http://127.0.0.1:8470 --token-file ~/.cps-token
    """
    client = connect(repo_path, server, token_file)
    if client is not None:
        with client:
            names = [db_id] if db_id else [d["db_id"] for d in client.get("/api/v1/databases")]
            found = [client.get(f"/api/v1/databases/{n}/timeline") for n in names]
    else:
        assert repo_path is not None
        repo = open_repository(repo_path, passphrase_file)
        found = [t.to_json() for t in timelines(repo, pick_database(repo, db_id) if db_id
                                                else None)]
    # One database: its timeline; none or several: a list (JSON consumers check which they got).
    output.emit(found[0] if len(found) == 1 else found, as_json, render_timelines)


def parse_target(latest: bool, at_time: str | None, point: str | None, txn: int | None, *,
                 default: Target | None = None) -> Target:
    """The one target given, or `default` when there is one and nothing is given."""
    given = [t for t in (
        Target("latest") if latest else None,
        Target("time", parse_time(at_time)) if at_time else None,
        Target("point", point) if point else None,
        Target("txn", txn) if txn is not None else None,
    ) if t is not None]
    if not given and default is not None:
        return default
    if len(given) != 1:
        raise UsageError("give exactly one of --latest, --at, --recovery-point, --txn")
    return given[0]


def render_timelines(data: Any) -> str:
    timelines = data if isinstance(data, list) else [data]
    if not timelines:
        return "no database is protected into this repository yet"
    return "\n\n".join(_render(t) for t in timelines)


def _render(t: dict[str, Any]) -> str:
    if t["latest_txn"] is None:
        head = f"database {t['db_id']}: nothing restorable yet"
    else:
        head = (f"database {t['db_id']}: restorable from {t['earliest']} to {t['latest']} "
                f"(transaction {t['latest_txn']})")
    lines = [head]
    for chain in t["chains"]:
        lines += _render_chain(chain)
    for point in t["recovery_points"]:
        kept = ", kept" if point["keep"] else ""
        lines.append(f"  point {point['name']!r}: transaction {point['txn']} "
                     f"({point['created_at']}{kept})")
    for point in t["unreadable_recovery_points"]:
        lines.append(f"  point (name unreadable, damaged file): transaction {point['txn']}")
    lines.append(f"  protector: {t['protector']['description']}")
    lines.append(_render_drills(t.get("last_drill"), t.get("last_passed_drill")))
    lines += [f"  warning: {w}" for w in t["warnings"]]
    return "\n".join(lines)


def _render_drills(last: dict[str, Any] | None, passed: dict[str, Any] | None) -> str:
    if last is None:
        return "  restore drill: never (cps drill restores and verifies chosen points)"
    verdict = ("passed" if last["passed"] else f"FAILED ({last['failed']} of {last['points']} "
               "points)")
    line = f"  restore drill: {verdict} at {last['ended_at']}, {last['points']} points"
    if not last["passed"]:
        line += f"; last passed: {passed['ended_at'] if passed else 'never'}"
    return line


def _render_chain(chain: dict[str, Any]) -> list[str]:
    if chain["removed"]:
        return [f"  chain {chain['chain']}: removed by prune (transactions {chain['first_txn']}.."
                f"{chain['last_txn']})"]
    lines = []
    if chain["gap_before"]:
        lines.append(f"  GAP {chain['gap_before']['from']} .. {chain['gap_before']['to']}: "
                     f"{chain['reason']}")
    if chain["incomplete"]:
        return [*lines, f"  chain {chain['chain']}: started {chain['started_at']}, its first "
                        "full backup never finished: nothing restorable in it"]
    lines.append(f"  chain {chain['chain']}: transactions {chain['first_txn']}.."
                 f"{chain['last_txn']} ({output.counted(len(chain['fulls']), 'full backup')}, "
                 f"{output.counted(chain['segments'], 'segment')}): {chain['reason']}")
    if chain["problem"]:
        lines.append(f"    DAMAGED: {chain['problem']}")
    pieces = [(s["first_txn"], f"    restorable: transactions {s['first_txn']}..{s['last_txn']}, "
                               f"{s['from']} .. {s['until']}") for s in chain["spans"]]
    pieces += [(h["first_txn"], ("    REMOVED BY PRUNE: " if h["kind"] == "pruned" else
                                 "    MISSING: ") + h["description"]) for h in chain["holes"]]
    return lines + [text for _first, text in sorted(pieces)]

