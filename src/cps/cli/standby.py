"""`cps standby`: a copy of a protected database kept replayed from its repository, and promoted."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from ..config import Location, S3Location, parse_duration, parse_location
from ..ops.standbys import (
    create_standby,
    keep_replaying,
    promote_standby,
    replay_round,
    standby_status,
)
from ..repository import Repository
from ..restore import Target, format_ms
from ..restore.standby import Round, open_record
from . import output
from .paths import NewFile
from .repo_options import (
    db_option,
    open_repository,
    passphrase_file_option,
    pick_database,
    repository_argument,
    repository_option,
)
from .restore import parse_target, target_options
from .signals import stop_on_signals

_COPY = click.argument("copy", metavar="PATH",
                       type=click.Path(dir_okay=False, path_type=Path))
_INTERVAL = click.option("--interval", default="500ms", show_default=True,
                         help="How often to look for new log in the repository.")
_ONCE = click.option("--once", is_flag=True, help="Replay one round, then stop.")
_FROM_REPOSITORY = repository_option(help="Where the log comes from.  [default: the repository "
                                          "the standby was created from]", required=False)


@click.group("standby")
def standby_group() -> None:
    """A standby copy of a protected database, replayed from its repository (a folder or a
    bucket, so it may live on another host), optionally lagged, promoted when the primary is
    lost. See docs/standby.md."""


@standby_group.command("create")
@repository_argument()
@db_option()
@click.option("--to", "copy", required=True, type=NewFile(),
              help="The standby copy's database file; its record goes beside it (PATH.standby).")
@click.option("--lag", default="0s", show_default=True,
              help="Hold replay back: apply only transactions committed at least this long ago "
                   "(like a lagged database copy), so logical damage can be stopped before it "
                   "reaches the copy.")
@_INTERVAL
@_ONCE
@click.option("--force", is_flag=True, help="Replace a copy and record at PATH.")
@passphrase_file_option
@output.json_option
def create_command(repo_path: Location, db_id: str | None, copy: Path, lag: str, interval: str,
                   once: bool, force: bool, passphrase_file: Path | None, as_json: bool) -> None:
    """Create a standby copy of a database at PATH, seeded from the repository, then keep it
    replayed in the foreground until Ctrl-C or SIGTERM (resume later with 'cps standby run').

    Examples:

    \b
      cps standby create /backup/cps --db mail01 --to /standby/mail01.db
      cps standby create s3://backups/cps --db mail01 --to /standby/mail01.db --lag 1h
    """
    repo = open_repository(repo_path, passphrase_file)
    name = pick_database(repo, db_id)
    where = str(repo_path) if isinstance(repo_path, S3Location) else str(Path(repo_path).resolve())
    done = create_standby(repo, name, copy, repository=where,
                          lag_ms=int(parse_duration(lag) * 1000), force=force)
    _report(done, as_json)
    if not once:
        _keep_replaying(repo, copy, interval, as_json)


@standby_group.command("run")
@_COPY
@_FROM_REPOSITORY
@_INTERVAL
@_ONCE
@passphrase_file_option
@output.json_option
def run_command(copy: Path, repo_path: Location | None, interval: str, once: bool,
                passphrase_file: Path | None, as_json: bool) -> None:
    """Keep the standby copy at PATH replayed, in the foreground, until Ctrl-C or SIGTERM (or
    one round with --once).

    Examples:

    \b
      cps standby run /standby/mail01.db
      cps standby run /standby/mail01.db --once --json
    """
    repo = _repository(copy, repo_path, passphrase_file)
    if once:
        _report(replay_round(repo, copy), as_json)
    else:
        _keep_replaying(repo, copy, interval, as_json)


@standby_group.command("status")
@_COPY
@output.json_option
def status_command(copy: Path, as_json: bool) -> None:
    """How far the standby copy at PATH is replayed, its lag and its health. Reads only the
    copy's record: the repository is not needed.

    Exit status 0 whatever the health; scripts read `health` from --json: ok, waiting, stopped,
    stale, failing or promoted.

    Examples:

    \b
      cps standby status /standby/mail01.db
      cps standby status /standby/mail01.db --json
    """
    output.emit(standby_status(copy), as_json, _render_status)


@standby_group.command("promote")
@_COPY
@_FROM_REPOSITORY
@target_options
@passphrase_file_option
@output.json_option
def promote_command(copy: Path, repo_path: Location | None, latest: bool, at_time: str | None,
                    point: str | None, txn: int | None, passphrase_file: Path | None,
                    as_json: bool) -> None:
    """Stop replay and make the standby copy at PATH a normal, writable mail database at the
    target: the latest captured transaction unless --at, --txn or --recovery-point says
    otherwise. Only the log up to the target is played; a target before the copy's state is
    restored whole. The copy is checked with PRAGMA integrity_check before it counts.

    Protect the promoted copy with 'cps protect PATH --repo REPO --db-id ID': it starts a new
    chain whose reason is the promotion.

    Examples:

    \b
      cps standby promote /standby/mail01.db
      cps standby promote /standby/mail01.db --recovery-point "before upgrade"
      cps standby promote /standby/mail01.db --at "2026-11-22 18:35"
    """
    target = parse_target(latest, at_time, point, txn, default=Target("latest"))
    repo = _repository(copy, repo_path, passphrase_file)
    done = promote_standby(repo, copy, target)
    record = done.record
    data = {"copy": str(copy), "db_id": record.db_id, "chain": record.chain, "txn": record.txn,
            "txn_time": format_ms(record.txn_time) if record.txn_time else None,
            "applied": done.applied, "restored_whole": done.seeded, "target": target.describe()}
    output.emit(data, as_json, lambda d: f"promoted {d['copy']}: {d['db_id']} at transaction "
                f"{d['txn']}" + (f" ({d['txn_time']})" if d["txn_time"] else "")
                + (f"; restored whole because {d['restored_whole']}" if d["restored_whole"]
                   else f", {d['applied']} transactions played forward"))


def _repository(copy: Path, given: Location | None, passphrase_file: Path | None) -> Repository:
    location = given if given is not None else parse_location(open_record(copy).repository)
    return open_repository(location, passphrase_file)


def _keep_replaying(repo: Repository, copy: Path, interval: str, as_json: bool) -> None:
    with stop_on_signals() as stop:
        record = keep_replaying(repo, copy, parse_duration(interval), stop,
                                lambda done: _report(done, as_json, quiet_when_idle=True))
    if record.state == "promoted":
        output.note(f"{copy} was promoted: replay stopped")


def _report(done: Round, as_json: bool, *, quiet_when_idle: bool = False) -> None:
    if quiet_when_idle and not done.applied and done.seeded is None and not done.record.problem:
        return
    record = done.record
    data = {"event": "seeded" if done.seeded else "replayed", "txn": record.txn,
            "chain": record.chain, "applied": done.applied, "seeded": done.seeded,
            "problem": record.problem or None,
            "txn_time": format_ms(record.txn_time) if record.txn_time else None}
    if as_json:
        click.echo(json.dumps(data), nl=True)
        return
    if record.chain == 0:
        output.note("nothing in the repository is older than the lag yet: the copy will be "
                    "seeded when something is")
        return
    what = (f"seeded (restored whole: {done.seeded})" if done.seeded
            else f"replayed {done.applied} transactions")
    output.note(f"{what}; the copy holds transaction {record.txn}"
                + (f" ({data['txn_time']})" if data["txn_time"] else "")
                + (f"; problem: {record.problem}" if record.problem else ""))


def _render_status(s: dict[str, Any]) -> str:
    lines = [f"standby {s['copy']} of {s['db_id']} from {s['repository']}",
             f"  health:       {s['health']}" + (f" ({s['problem']})" if s["problem"] else ""),
             f"  state:        {s['state']}" + (f" since {s['promoted_at']}"
                                               if s["promoted_at"] else ""),
             f"  replayed:     chain {s['chain']}, transaction {s['txn']}"
             + (f" ({s['txn_time']})" if s["txn_time"] else ""),
             f"  lag setting:  {output.duration(s['lag_setting'])}"]
    if s["replay_lag"] is not None:
        lines.append(f"  behind now:   {output.duration(s['replay_lag'])}"
                     + (f", {s['transactions_behind']} transactions behind the repository"
                        if s["transactions_behind"] is not None else ""))
    lines.append(f"  last round:   {s['replayed_at'] or 'never'}; replay "
                 + ("running" if s["replay_running"] else "not running"))
    if s["seeds"]:
        lines.append(f"  seeded:       {s['seeds']} time(s), last because {s['seed_reason']}")
    return "\n".join(lines)
