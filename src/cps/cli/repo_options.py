"""Options shared by the commands that use a repository: where it is (a folder, or s3://bucket/prefix
with the options reaching the bucket), its passphrase, which database in it."""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from ..config import Location, S3Location, S3Options, is_url, parse_location
from ..errors import UsageError
from ..repository import Repository

F = TypeVar("F", bound=Callable[..., Any])

_S3_OPTIONS = "cps.s3"  # where the S3 options given are kept in the click context's meta

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


def open_repository(location: Location, passphrase_file: Path | None) -> Repository:
    """Open a repository, asking for the passphrase only when it is encrypted."""
    location = with_s3_options(location)
    encrypted = bool(Repository.read_config(location).get("encrypted"))
    return Repository.open(location,
                           passphrase=read_passphrase(passphrase_file) if encrypted else None)


def with_s3_options(location: Location) -> Location:
    """`location` with the S3 options the command was given (--s3-*, CPS_S3_*)."""
    context = click.get_current_context(silent=True)
    options = context.meta.get(_S3_OPTIONS) if context is not None else None
    if not isinstance(location, S3Location) or options is None:
        return location
    return location.reached_with(options)


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


class RepositoryLocation(click.Path):
    """A repository's folder, or its s3://bucket/prefix URL (whose options come from
    `s3_options` when it is opened), as every command reads one."""

    name = "repository"

    def __init__(self) -> None:
        super().__init__(file_okay=False, path_type=Path)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, str) and is_url(value):
            return parse_location(value)
        return super().convert(value, param, ctx)


def s3_options(function: F) -> F:
    """--s3-endpoint-url, --s3-region and --s3-profile, for a repository in a bucket; kept in
    the context for `with_s3_options`."""
    def keep(context: click.Context, param: click.Parameter, value: str | None) -> None:
        given = context.meta.setdefault(_S3_OPTIONS, S3Options())
        field = (param.name or "").removeprefix("s3_")
        context.meta[_S3_OPTIONS] = dataclasses.replace(given, **{field: value})

    options = [
        ("--s3-endpoint-url", "CPS_S3_ENDPOINT_URL", "URL",
         "Endpoint of an S3-compatible store other than AWS (MinIO, SeaweedFS).  [default: "
         "AWS_ENDPOINT_URL_S3, the profile's, or AWS's]"),
        ("--s3-region", "CPS_S3_REGION", "NAME",
         "Region of the bucket.  [default: AWS_REGION, or the profile's]"),
        ("--s3-profile", "CPS_S3_PROFILE", "NAME",
         "Profile of the shared AWS config and credentials files to use.  [default: AWS_PROFILE, "
         "or 'default']"),
    ]
    for flag, variable, metavar, text in reversed(options):
        function = click.option(flag, envvar=variable, metavar=metavar, expose_value=False,
                                callback=keep, help=text)(function)
    return function


def repository_argument(name: str = "repo_path", metavar: str = "REPO", *,
                        required: bool = True) -> Callable[[F], F]:
    """REPO; not `required` by the commands that can ask a server instead (remote.py)."""
    def decorate(function: F) -> F:
        argument = click.argument(name, metavar=metavar if required else f"[{metavar}]",
                                  type=RepositoryLocation(), required=required)
        return argument(s3_options(function))
    return decorate


def repository_option(help: str | None = None, *, required: bool = True) -> Callable[[F], F]:
    def decorate(function: F) -> F:
        option = click.option("--repo", "repo_path", required=required,
                              type=RepositoryLocation(), help=help)
        return option(s3_options(function))
    return decorate


def db_option() -> Callable[[F], F]:
    return click.option("--db", "db_id", metavar="ID",
                        help="Database in the repository; may be left out when there is one.")
