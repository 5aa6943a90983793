"""What the granular-recovery commands share: the repository (or the server, with `--server`), the
point in time, and the way they print where a point is."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from ..client import ServerClient
from ..config import Location
from ..granular import Snapshot, open_snapshot, point_target
from ..restore import Target, format_ms
from .remote import (
    Positional,
    connect,
    pick_server_database,
    repository_and,
    server_options,
    split_words,
)
from .repo_options import db_option, open_repository, passphrase_file_option, pick_database

Command = Callable[..., Any]


@dataclass(frozen=True, slots=True)
class Source:
    """A repository's database, or a server's (`client`); `target` when the command takes one."""

    repo_path: Location | None
    db_id: str | None
    passphrase_file: Path | None
    client: ServerClient | None
    target: Target | None = None

    def open(self, target: Target | None = None) -> Snapshot:
        """The database at `target` (default: the command's point), read from the repository."""
        chosen = target or self.target
        assert chosen is not None, "a command without point options named no point"
        assert self.repo_path is not None, "a server's points are read through the API"
        repo = open_repository(self.repo_path, self.passphrase_file)
        return open_snapshot(repo, pick_database(repo, self.db_id), chosen)

    def mail_api(self) -> tuple[ServerClient, str]:
        """With --server: the client, and the path of its database's mail endpoints."""
        assert self.client is not None
        return self.client, f"/api/v1/databases/{pick_server_database(self.client, self.db_id)}/mail"

    def point(self) -> str:
        """The command's point as the API names one (latest, txn:N, point:NAME, at:TIME)."""
        assert self.target is not None
        return self.target.spec()


_POINT_KEYS = ("latest", "at_time", "recovery_point", "txn")


def source_options(*, point: bool, after: tuple[Positional, ...] = ()
                   ) -> Callable[[Command], Command]:
    """REPO (or --server and --token-file), the arguments `after` it, --db, --passphrase-file
    and, with `point`, --latest/--at/--recovery-point/--txn; the command receives them as one
    `source` argument, and the arguments `after` by their names."""
    def decorate(command: Command) -> Command:
        @functools.wraps(command)
        def run(**kwargs: Any) -> Any:
            server = kwargs.pop("server")
            repo_path, arguments = split_words(kwargs.pop("words"), after, server=server)
            client = connect(repo_path, server, kwargs.pop("token_file"))
            source = functools.partial(Source, repo_path, kwargs.pop("db_id"),
                                       kwargs.pop("passphrase_file"), client)
            target = None
            if point:
                latest, at_time, recovery_point, txn = (kwargs.pop(key) for key in _POINT_KEYS)
                target = point_target(latest=latest, at=at_time, recovery_point=recovery_point,
                                      txn=txn)
            return command(source=source(target), **arguments, **kwargs)

        options: list[Callable[[Any], Any]] = [repository_and(*after), db_option()]
        if point:
            options += _point_options()
        options += [passphrase_file_option, server_options]
        for option in reversed(options):
            run = option(run)
        return run
    return decorate


def _point_options() -> list[Callable[[Command], Command]]:
    return [
        click.option("--latest", is_flag=True, help="The latest captured transaction."),
        click.option("--at", "at_time", metavar="TIME",
                     help="The last transaction committed at or before TIME: "
                          "2026-11-22T18:35:01.250Z, '2026-11-22 18:35' (local time) or '15m ago'."),
        click.option("--recovery-point", metavar="NAME", help="A recovery point, by name."),
        click.option("--txn", type=int, help="A transaction number, as 'cps timeline' shows them."),
    ]


def describe(snapshot: Snapshot) -> dict[str, Any]:
    """The point a result is from, for JSON output."""
    data = snapshot.describe()
    data["txn_time"] = format_ms(snapshot.txn_time) if snapshot.txn_time is not None else None
    return data


def as_of(point: dict[str, Any]) -> str:
    """A heading for text output: which point this is (as `describe` or the API gives it)."""
    when = f" ({point['txn_time']})" if point["txn_time"] is not None else ""
    name = "" if point["label"].startswith("txn ") else f" '{point['label']}'"
    return f"{point['db_id']} at transaction {point['txn']}{name}{when}"


def day_time(seconds: int) -> str:
    try:
        return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M")
    except (OverflowError, OSError, ValueError):
        return str(seconds)


def cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def place(mailbox: str, folder: list[str] | tuple[str, ...]) -> str:
    return "/".join((mailbox, *folder))
