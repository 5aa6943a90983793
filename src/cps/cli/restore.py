"""`cps restore` and `cps timeline`."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import click

from ..errors import UsageError
from ..restore import (
    Catalog,
    Target,
    format_ms,
    load_catalog,
    parse_time,
    plan_restore,
    restore,
)
from . import output
from .paths import NewFile
from .progress import progress_reporter
from .repo_options import (
    db_option,
    open_repository,
    passphrase_file_option,
    pick_database,
    repository_argument,
)


@click.command("restore")
@repository_argument()
@db_option()
@click.option("--to", "output_path", required=True,
              type=NewFile(), help="The database file to write.")
@click.option("--latest", is_flag=True, help="The latest captured transaction.")
@click.option("--at", "at_time", metavar="TIME",
              help="The last transaction committed at or before TIME: 2026-11-22T18:35:01.250Z, "
                   "2026-11-22 18:35 (local time) or 15m ago.")
@click.option("--recovery-point", "point", metavar="NAME", help="A recovery point, by name.")
@click.option("--txn", type=int, help="A transaction number, as 'cps timeline' shows them.")
@click.option("--force", is_flag=True, help="Replace OUT if it exists.")
@click.option("--best-effort", is_flag=True,
              help="When a repository file is damaged, restore the latest point before it.")
@passphrase_file_option
@output.json_option
def restore_command(repo_path: Path, db_id: str | None, output_path: Path, latest: bool,
                    at_time: str | None, point: str | None, txn: int | None, force: bool,
                    best_effort: bool, passphrase_file: Path | None, as_json: bool) -> None:
    """Write the database as it was at exactly one transaction into a new file, fsynced and
    checked with PRAGMA integrity_check. Exactly one target is needed.

    Examples:

    \b
      cps restore /backup/cps --db mail01 --to /tmp/mail01.db --latest
      cps restore /backup/cps --to old.db --at "2026-11-22T18:35:01.250Z"
      cps restore /backup/cps --to old.db --at "15m ago"
      cps restore /backup/cps --to old.db --recovery-point "before upgrade"
    """
    target = _target(latest, at_time, point, txn)
    repo = open_repository(repo_path, passphrase_file)
    name = pick_database(repo, db_id)
    with repo.reader_lock():
        catalog = load_catalog(repo, name)
        plan = plan_restore(catalog, target, _synced_through(repo, name), best_effort=best_effort)
        started = time.monotonic()
        with progress_reporter(enabled=not as_json) as progress:
            result = restore(repo, plan, output_path, force=force, best_effort=best_effort,
                             progress=progress)
    data = {
        "output": str(result.output), "db_id": name, "chain": result.chain, "txn": result.txn,
        "txn_time": format_ms(result.txn_time) if result.txn_time else None,
        "pages": result.pages, "seconds": round(time.monotonic() - started, 3),
        "damaged": result.damaged, "target": target.describe(),
    }
    if result.damaged:
        output.note(f"warning: {result.damaged}; restored the latest point before it")
    output.emit(data, as_json, lambda d: f"restored {d['db_id']} at transaction {d['txn']}"
                + (f" ({d['txn_time']})" if d["txn_time"] else "") + f" to {d['output']}")


@click.command("timeline")
@repository_argument()
@db_option()
@passphrase_file_option
@output.json_option
def timeline_command(repo_path: Path, db_id: str | None, passphrase_file: Path | None,
                     as_json: bool) -> None:
    """Show what a repository can restore: chains, full backups, recovery points, gaps, the
    earliest and latest restorable times, and the current capture lag.

    Examples:

    \b
      cps timeline /backup/cps
      cps timeline /backup/cps --db mail01 --json
    """
    repo = open_repository(repo_path, passphrase_file)
    names = [pick_database(repo, db_id)] if db_id or len(repo.databases()) <= 1 else [
        d.db_id for d in repo.databases()]
    timelines = [_timeline(load_catalog(repo, n), repo.status(n)) for n in names]
    output.emit(timelines if len(timelines) > 1 else timelines[0], as_json, _render_timelines)


def _target(latest: bool, at_time: str | None, point: str | None, txn: int | None) -> Target:
    given = [t for t in (
        Target("latest") if latest else None,
        Target("time", parse_time(at_time)) if at_time else None,
        Target("point", point) if point else None,
        Target("txn", txn) if txn is not None else None,
    ) if t is not None]
    if len(given) != 1:
        raise UsageError("give exactly one of --latest, --at, --recovery-point, --txn")
    return given[0]


def _synced_through(repo: Any, name: str) -> int | None:
    status = repo.status(name)
    if status and status.get("state") == "protecting":
        return int(status.get("synced_through") or 0) or None
    return None


def _timeline(catalog: Catalog, status: dict[str, Any] | None) -> dict[str, Any]:
    chains = []
    previous_end = None
    for view in catalog.chains:
        chains.append({
            "chain": view.chain.chain, "reason": view.chain.reason,
            "started_at": format_ms(view.chain.started_at),
            "first_txn": view.first_txn, "last_txn": view.last_txn,
            "last_time": format_ms(view.last_seen), "restorable": view.restorable,
            "gap_before": None if previous_end is None else {
                "from": format_ms(previous_end), "to": format_ms(view.chain.started_at)},
            "missing_segment_after_txn": view.missing_after(),
            "fulls": [{"txn": f.txn, "taken_at": format_ms(f.taken_at)} for f in view.fulls],
            "segments": len(view.segments),
        })
        previous_end = view.last_seen
    restorable = catalog.restorable_chains
    lag = None
    if status and status.get("state") == "protecting":
        lag = {"p50_seconds": status.get("lag_p50"), "p99_seconds": status.get("lag_p99"),
               "status_age_seconds": round(time.time() - status["updated_at"] / 1000, 3)}
    return {
        "db_id": catalog.db_id,
        "earliest": format_ms(restorable[0].chain.started_at) if restorable else None,
        "latest": format_ms(restorable[-1].last_seen) if restorable else None,
        "latest_txn": restorable[-1].last_txn if restorable else None,
        "chains": chains,
        "recovery_points": [{"name": p.name, "txn": p.txn, "chain": p.chain,
                             "created_at": format_ms(p.created_at), "scheduled": p.scheduled}
                            for p in catalog.points],
        "protector": status, "capture_lag": lag,
    }


def _render_timelines(data: Any) -> str:
    return "\n\n".join(_render(t) for t in (data if isinstance(data, list) else [data]))


def _render(t: dict[str, Any]) -> str:
    lines = [f"database {t['db_id']}: restorable from {t['earliest']} to {t['latest']} "
             f"(transaction {t['latest_txn']})"]
    for chain in t["chains"]:
        if chain["gap_before"]:
            lines.append(f"  GAP {chain['gap_before']['from']} .. {chain['gap_before']['to']}: "
                         f"{chain['reason']}")
        lines.append(f"  chain {chain['chain']}: transactions {chain['first_txn']}.."
                     f"{chain['last_txn']}, {chain['started_at']} .. {chain['last_time']}"
                     f" ({len(chain['fulls'])} full backups, {chain['segments']} segments)")
        if chain["missing_segment_after_txn"] is not None:
            lines.append(f"    MISSING log after transaction {chain['missing_segment_after_txn']}")
    for point in t["recovery_points"]:
        lines.append(f"  point {point['name']!r}: transaction {point['txn']} "
                     f"({point['created_at']})")
    lag = t["capture_lag"]
    if lag and lag["p99_seconds"] is not None:
        lines.append(f"  capture lag (seen to durable): p50 {lag['p50_seconds']:.3f} s, "
                     f"p99 {lag['p99_seconds']:.3f} s")
    elif not lag:
        lines.append("  not being protected now")
    return "\n".join(lines)
