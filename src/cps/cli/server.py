"""`cps server`: run the server; `cps server token ...`: the API's tokens."""

from __future__ import annotations

from pathlib import Path

import click

from .. import logs
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
      cps server token list --config /etc/cps/cps.toml
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
    """Revoke the token TOKEN_ID (as 'cps server token list' shows it).

    Examples:

    \b
      cps server token revoke --config /etc/cps/cps.toml 3f9a0c2b71d4
    """
    record = TokenStore(load_config(config_path).server.state_dir).revoke(token_id)
    output.emit({"id": record.id, "name": record.name, "revoked": True}, as_json,
                lambda d: f"revoked token {d['id']} of {d['name']}")
