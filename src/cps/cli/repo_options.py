"""Options shared by the commands that use a repository: where it is, its passphrase, which
database in it, and durations such as 24h or 500ms."""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from ..errors import UsageError
from ..repository import Repository

F = TypeVar("F", bound=Callable[..., Any])

_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")

passphrase_file_option = click.option(
    "--passphrase-file", type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="Read the repository passphrase from this file (first line). Otherwise CPS_PASSPHRASE, "
         "or a prompt on a terminal.")


def read_passphrase(passphrase_file: Path | None, *, confirm: bool = False) -> str | None:
    if passphrase_file is not None:
        lines = passphrase_file.read_text().splitlines()
        return lines[0] if lines else ""
    if "CPS_PASSPHRASE" in os.environ:
        return os.environ["CPS_PASSPHRASE"]
    if sys.stdin.isatty():
        return str(click.prompt("Repository passphrase", hide_input=True,
                                confirmation_prompt=confirm, err=True))
    return None


def open_repository(path: Path, passphrase_file: Path | None) -> Repository:
    """Open a repository, asking for the passphrase only when it is encrypted."""
    encrypted = bool(Repository.read_config(path).get("encrypted"))
    return Repository.open(path, passphrase=read_passphrase(passphrase_file) if encrypted else None)


def pick_database(repo: Repository, db_id: str | None) -> str:
    """The database meant: the one given, or the only one the repository holds."""
    if db_id is not None:
        repo.database(db_id)
        return db_id
    known = [d.db_id for d in repo.databases()]
    if len(known) == 1:
        return known[0]
    raise UsageError(
        "the repository holds " + (f"{len(known)} databases" if known else "no database"),
        hint=("Name one with --db: " + ", ".join(known) + ".") if known else
        "Protect one first with 'cps protect DB --repo REPO'.")


class RepositoryPath(click.Path):
    """A repository's folder, as every command reads one. URLs are refused: until object storage
    is supported, 's3://bucket/prefix' would otherwise be a local folder named 's3:'."""

    def __init__(self) -> None:
        super().__init__(file_okay=False, path_type=Path)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, str) and _URL.match(value):
            raise UsageError(f"object storage is not supported yet: {value}",
                             hint="Give the path of a local folder for the repository.")
        return super().convert(value, param, ctx)


def repository_argument(name: str = "repo_path", metavar: str = "REPO", *,
                        required: bool = True) -> Callable[[F], F]:
    """REPO; not `required` by the commands that can ask a server instead (remote.py)."""
    return click.argument(name, metavar=metavar if required else f"[{metavar}]",
                          type=RepositoryPath(), required=required)


def repository_option(help: str | None = None) -> Callable[[F], F]:
    return click.option("--repo", "repo_path", required=True, type=RepositoryPath(), help=help)


def db_option() -> Callable[[F], F]:
    return click.option("--db", "db_id", metavar="ID",
                        help="Database in the repository; may be left out when there is one.")
