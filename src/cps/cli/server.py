"""`cps server`: run the server; `cps server token ...`: the API's tokens."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import click

from .. import logs
from ..client import ServerClient, read_token
from ..config import load_config
from ..server import serve
from ..server.auth import ROLES, TokenStore
from . import output

config_option = click.option(
    "--config", "config_path", required=True, metavar="FILE",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The configuration file (TOML; docs/cps.example.toml shows every key).")


@click.group("server", invoke_without_command=True)
@click.option("--config", "config_path", metavar="FILE",
              type=click.Path(dir_okay=False, path_type=Path),
              help="The configuration file (TOML; docs/cps.example.toml shows every key).")
@click.option("--log-format", type=click.Choice(["text", "json"]), default=None,
              help="Log lines for people, or JSON lines.  [default: the file's, or text]")
@click.pass_context
def server_group(context: click.Context, config_path: Path | None, log_format: str | None
                 ) -> None:
    """Run the CPS server in the foreground until SIGTERM or Ctrl-C: the SMTP and LMTP intake
    of the configured databases, their continuous protection with full backups, recovery points
    and retention on schedule, and the HTTP API. When it is ready it prints one JSON line on
    stdout saying where everything listens; it logs to stderr.

    Examples:

    \b
      cps server --config /etc/cps/cps.toml
      cps server --config cps.toml --log-format json
      cps server token create --config cps.toml --name monitoring --role auditor
    """
    if context.invoked_subcommand is not None:
        return
    if config_path is None:
        raise click.UsageError("Missing option '--config'.")
    config = load_config(config_path)
    logs.configure(log_format or config.server.log_format)
    serve(config)


@server_group.group("token")
def token_group() -> None:
    """Bearer tokens for the API: made, listed and revoked here, stored only as hashes."""


@token_group.command("create")
@config_option
@click.option("--name", required=True, help="Who or what will use the token.")
@click.option("--role", type=click.Choice(ROLES), required=True,
              help="auditor (status and timelines), operator (also restores and mail), admin.")
@output.json_option
def token_create(config_path: Path, name: str, role: str, as_json: bool) -> None:
    """Make a token and print it, once: it is stored only as a hash.

    Examples:

    \b
      cps server token create --config cps.toml --name alice --role operator
    """
    store = TokenStore(load_config(config_path).server.state_dir)
    token, record = store.create(name, role)
    output.emit({"token": token, "id": record.id, "name": record.name, "role": record.role},
                as_json, lambda d: f"{d['token']}\n(token {d['id']} for {d['name']}, "
                                   f"{d['role']}: shown once, keep it safe)")


@token_group.command("list")
@config_option
@output.json_option
def token_list(config_path: Path, as_json: bool) -> None:
    """The tokens: id, name and role (never the tokens themselves).

    Examples:

    \b
      cps server token list --config cps.toml
      cps server token list --config cps.toml --json
    """
    records = TokenStore(load_config(config_path).server.state_dir).records()
    rows = [{"id": r.id, "name": r.name, "role": r.role, "created_at": r.created_at}
            for r in records]
    output.emit(rows, as_json, lambda rs: "\n".join(f"{r['id']}  {r['role']:8} {r['name']}"
                                                    for r in rs) or "no tokens")


@token_group.command("revoke")
@config_option
@click.argument("token_id")
@output.json_option
def token_revoke(config_path: Path, token_id: str, as_json: bool) -> None:
    """Revoke the token TOKEN_ID (as 'cps server token list' shows it): it is refused from the
    next request on.

    Examples:

    \b
      cps server token revoke --config cps.toml 3f9a0c1d2e4b
    """
    record = TokenStore(load_config(config_path).server.state_dir).revoke(token_id)
    output.emit({"id": record.id, "name": record.name, "revoked": True}, as_json,
                lambda d: f"revoked token {d['id']} of {d['name']}")


@server_group.command("status")
@click.option("--server", required=True, metavar="URL", help="The CPS server's API address.")
@click.option("--token-file", required=True, envvar="CPS_TOKEN_FILE",
              type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="The file whose first line is an API token (or CPS_TOKEN_FILE).")
@click.option("--db", "db_id", metavar="ID", help="One database.  [default: all]")
@output.json_option
def server_status(server: str, token_file: Path, db_id: str | None, as_json: bool) -> None:
    """The protection of each database a running server protects: its state, the last
    transaction and how far behind capture is, the last and next full backup and recovery
    point, the repository's size and recent errors.

    Examples:

    \b
      cps server status --server http://127.0.0.1:8470 --token-file ~/.cps-token
      cps server status --server http://127.0.0.1:8470 --token-file ~/.cps-token --db mail01
    """
    with ServerClient(server, read_token(token_file)) as client:
        found = ([client.get(f"/api/v1/databases/{db_id}")] if db_id
                 else client.get("/api/v1/databases"))
    output.emit(found, as_json, lambda rows: "\n\n".join(_render_status(r) for r in rows)
                or "the server protects no database")


def _render_status(d: dict[str, Any]) -> str:
    now = time.time()
    protection = d["protection"]
    last = d["last_transaction"] or {}
    lag = d["capture_lag"] or {}
    lines = [f"{d['db_id']}: {protection['condition']}"
             + (f" ({protection['outage']})" if protection["outage"] else "")
             + (f", restarted {output.counted(protection['restarts'], 'time')}"
                if protection["restarts"] else ""),
             f"  last transaction: {last.get('txn') or 'none'}"
             + (f", {_ago(now, last['time'])}" if last.get("time") else "")
             + (f"; capture lag p99 {lag['p99_seconds']:.2f} s"
                if lag.get("p99_seconds") is not None else "")]
    for label, key, next_key in (("full backup", "last_full", "next_full"),
                                 ("recovery point", "last_recovery_point", "next_recovery_point")):
        seen = d[key]
        lines.append(f"  last {label}: " + (f"transaction {seen['txn']}, {_ago(now, seen['time'])}"
                                             if seen else "none")
                     + (f"; next {_ago(now, d[next_key])}" if d[next_key] else ""))
    size = d["repository_bytes"]
    shown = f"{size / (1 << 20):.1f} MiB" if size is not None else "size unknown"
    lines.append(f"  repository: {d['repository']} ({shown})")
    if d["repository_error"]:
        lines.append(f"  REPOSITORY ERROR: {d['repository_error']}")
    lines += [f"  error ({e['kind']}): {e['message']}" for e in d["errors"][-3:]]
    return "\n".join(lines)


def _ago(now: float, at: float) -> str:
    """'3m ago' or 'in 2h'."""
    seconds = now - float(at)
    text = output.duration(abs(seconds))
    return f"{text} ago" if seconds >= 0 else f"in {text}"
