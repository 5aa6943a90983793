"""`cps prune`: retention of full backups and recovery points."""

from __future__ import annotations

from pathlib import Path

import click

from ..repository.prune import Retention, prune
from . import output
from .repo_options import open_repository, parse_duration, passphrase_file_option, repository_argument


@click.command("prune")
@repository_argument()
@click.option("--keep-within", default="7d", show_default=True,
              help="Keep every point in time this far back (point-in-time restore).")
@click.option("--keep-daily", default=30, show_default=True,
              help="Also keep the last full backup or recovery point of this many days.")
@click.option("--keep-weekly", default=12, show_default=True,
              help="Also keep the last full backup or recovery point of this many weeks.")
@click.option("--dry-run", is_flag=True, help="Say what would be deleted; delete nothing.")
@passphrase_file_option
@output.json_option
def prune_command(repo_path: Path, keep_within: str, keep_daily: int, keep_weekly: int,
                  dry_run: bool, passphrase_file: Path | None, as_json: bool) -> None:
    """Delete the full backups, log segments and recovery points that the retention policy does
    not keep, then the page packs nothing uses any more. The latest full backup and everything
    after it are always kept. Safe to interrupt at any moment, and to run while 'cps protect'
    runs.

    Examples:

    \b
      cps prune /backup/cps --keep-within 7d --keep-daily 30 --keep-weekly 12
      cps prune /backup/cps --keep-within 1d --dry-run
    """
    repo = open_repository(repo_path, passphrase_file)
    report = prune(repo, Retention(parse_duration(keep_within), keep_daily, keep_weekly),
                   dry_run=dry_run)
    data = {"dry_run": dry_run, "deleted_files": len(report.deleted_files),
            "deleted_bytes": report.deleted_bytes, "kept_points": len(report.kept_points),
            "files": report.deleted_files}
    verb = "would delete" if dry_run else "deleted"
    output.emit(data, as_json, lambda d: f"{verb} {d['deleted_files']} files "
                f"({d['deleted_bytes']} bytes); {d['kept_points']} restore points kept")
