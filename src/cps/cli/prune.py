"""`cps prune`: retention of full backups and recovery points."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from ..config import parse_duration
from ..repository.prune import Retention, prune
from ..restore import format_ms
from . import output
from .progress import progress_reporter
from .repo_options import open_repository, passphrase_file_option, repository_argument


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
    with progress_reporter(enabled=not as_json) as progress:
        report = prune(repo, Retention(parse_duration(keep_within), keep_daily, keep_weekly),
                       dry_run=dry_run, progress=progress)
    for path in report.unreadable_points:
        output.note(f"warning: kept {path}: it cannot be read, so whether it is to be kept is "
                    "unknown; delete it by hand if it is not needed")
    if report.packs_left:
        output.note(f"warning: {report.packs_left}")
    data = {"dry_run": dry_run, "deleted_files": len(report.deleted_files),
            "deleted_bytes": report.deleted_bytes, "deleted_fulls": report.deleted_fulls,
            "deleted_segments": report.deleted_segments, "deleted_points": report.deleted_points,
            "deleted_chains": report.deleted_chains, "deleted_packs": report.deleted_packs,
            "kept_fulls": report.kept_fulls, "kept_points": report.kept_points,
            "kept_since": format_ms(report.kept_since) if report.kept_since else None,
            "files": report.deleted_files}
    output.emit(data, as_json, _render)


def _render(d: dict[str, Any]) -> str:
    verb = "would delete" if d["dry_run"] else "deleted"
    deleted = ", ".join(output.counted(d[f"deleted_{key}"], noun) for key, noun in (
        ("fulls", "full backup"), ("segments", "segment"), ("points", "recovery point"),
        ("chains", "chain"), ("packs", "pack")))
    size = f"{d['deleted_bytes'] / (1 << 20):.1f} MiB"
    return (f"{verb} {deleted} ({size}); kept {output.counted(d['kept_fulls'], 'full backup')}, "
            f"{output.counted(d['kept_points'], 'recovery point')} and every point in time since "
            f"{d['kept_since']}")
