"""`cps prune`: retention of full backups and recovery points."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from ..config import Location, parse_duration
from ..errors import UsageError
from ..repository.prune import Retention, prune
from ..restore import format_ms
from . import output
from .progress import progress_reporter
from .remote import connect, pick_server_database, run_job, server_options
from .repo_options import (
    open_repository,
    passphrase_file_option,
    pick_database,
    repository_argument,
)


@click.command("prune")
@repository_argument(required=False)
@click.option("--keep-within", default="7d", show_default=True,
              help="Keep every point in time this far back (point-in-time restore).")
@click.option("--keep-daily", default=30, show_default=True,
              help="Also keep the last full backup or recovery point of this many days.")
@click.option("--keep-weekly", default=12, show_default=True,
              help="Also keep the last full backup or recovery point of this many weeks.")
@click.option("--dry-run", is_flag=True, help="Say what would be deleted; delete nothing.")
@click.option("--db", "db_id", metavar="ID",
              help="Prune only this database of the repository.  [default: all; with --server, "
                   "the server's only database]")
@passphrase_file_option
@server_options
@output.json_option
@click.pass_context
def prune_command(context: click.Context, repo_path: Location | None, keep_within: str,
                  keep_daily: int, keep_weekly: int, dry_run: bool, db_id: str | None,
                  passphrase_file: Path | None, server: str | None, token_file: Path | None,
                  as_json: bool) -> None:
    """Delete the full backups, log segments and recovery points that the retention policy does
    not keep, then the page packs nothing uses any more. The latest full backup and everything
    after it are always kept. Safe to interrupt at any moment, and to run while 'cps protect'
    runs.

    Examples:

    \b
      cps prune /backup/cps --keep-within 7d --keep-daily 30 --keep-weekly 12
      cps prune /backup/cps --keep-within 1d --dry-run
      cps prune --server http://127.0.0.1:8470 --token-file ~/.cps-token --db mail01
    """
    client = connect(repo_path, server, token_file)
    if client is not None:
        _refuse_policy_for_server(context)
        with client:
            name = pick_server_database(client, db_id)
            result = run_job(client, client.post(f"/api/v1/databases/{name}/prunes"),
                             as_json=as_json)
        output.emit({**result, "db_id": name}, as_json, _render_server)
        return
    assert repo_path is not None
    repo = open_repository(repo_path, passphrase_file)
    with progress_reporter(enabled=not as_json) as progress:
        report = prune(repo, Retention(parse_duration(keep_within), keep_daily, keep_weekly),
                       dry_run=dry_run, db_id=pick_database(repo, db_id) if db_id else None,
                       progress=progress)
    for path in report.unreadable_points:
        output.note(f"warning: kept {path}: it cannot be read, so whether it is to be kept is "
                    "unknown; delete it by hand if it is not needed")
    if report.packs_left:
        output.note(f"warning: {report.packs_left}")
    if report.retained_files:
        output.note(f"kept {output.counted(len(report.retained_files), 'file')} that Object Lock "
                    "still retains: a later prune deletes them once their retention ends")
    data = {"dry_run": dry_run, "deleted_files": len(report.deleted_files),
            "deleted_bytes": report.deleted_bytes, "deleted_fulls": report.deleted_fulls,
            "deleted_segments": report.deleted_segments, "deleted_points": report.deleted_points,
            "deleted_chains": report.deleted_chains, "deleted_packs": report.deleted_packs,
            "deleted_drills": report.deleted_drills,
            "kept_fulls": report.kept_fulls, "kept_points": report.kept_points,
            "kept_since": format_ms(report.kept_since) if report.kept_since else None,
            "files": report.deleted_files, "retained_files": report.retained_files}
    output.emit(data, as_json, _render)


def _refuse_policy_for_server(context: click.Context) -> None:
    """A server prunes by its configured policy: options that would say otherwise are refused
    rather than ignored."""
    given = [f"--{name.replace('_', '-')}" for name in ("keep_within", "keep_daily",
                                                          "keep_weekly", "dry_run")
             if context.get_parameter_source(name) is not click.core.ParameterSource.DEFAULT]
    if given:
        raise UsageError(f"{', '.join(given)} cannot be used with --server",
                         hint="The server prunes by the policy of its configuration file "
                              "(keep_within, keep_daily, keep_weekly).")


def _render_server(d: dict[str, Any]) -> str:
    return (f"deleted {output.counted(d['deleted_files'], 'file')} "
            f"({d['deleted_bytes'] / (1 << 20):.1f} MiB) of {d['db_id']} by the server's "
            f"retention policy; kept {output.counted(d['kept_fulls'], 'full backup')} and "
            f"{output.counted(d['kept_points'], 'recovery point')}")


def _render(d: dict[str, Any]) -> str:
    verb = "would delete" if d["dry_run"] else "deleted"
    deleted = ", ".join(output.counted(d[f"deleted_{key}"], noun) for key, noun in (
        ("fulls", "full backup"), ("segments", "segment"), ("points", "recovery point"),
        ("chains", "chain"), ("packs", "pack"), ("drills", "drill record")))
    size = f"{d['deleted_bytes'] / (1 << 20):.1f} MiB"
    return (f"{verb} {deleted} ({size}); kept {output.counted(d['kept_fulls'], 'full backup')}, "
            f"{output.counted(d['kept_points'], 'recovery point')} and every point in time since "
            f"{d['kept_since']}")
