"""`--server URL --token-file F`: the verbs that read or act on a repository can ask a running
CPS server instead, which then does the work (and audits it) where the repository is."""

from __future__ import annotations

import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import click

from ..client import ServerClient, read_token
from ..config import Location
from ..errors import ServerError, UsageError
from .progress import progress_reporter
from .repo_options import RepositoryLocation, s3_options

F = TypeVar("F", bound=Callable[..., Any])


def server_options(command: F) -> F:
    """--server and --token-file; the command receives them as `server` and `token_file`."""
    command = click.option(
        "--token-file", type=click.Path(dir_okay=False, exists=True, path_type=Path),
        envvar="CPS_TOKEN_FILE",
        help="With --server: the file whose first line is an API token (or CPS_TOKEN_FILE).",
    )(command)
    return click.option(
        "--server", metavar="URL",
        help="Ask the CPS server at URL (e.g. http://127.0.0.1:8470) instead of reading REPO.",
    )(command)


@dataclass(frozen=True, slots=True)
class Positional:
    """An argument that follows REPO."""

    name: str
    metavar: str
    required: bool = True


def repository_and(*after: Positional) -> Callable[[F], F]:
    """REPO then the arguments `after`, for a command that takes --server too: REPO is left out
    with --server, which click cannot tell from the arguments after it, so they are read
    together (as `words`) and told apart by `split_words`."""
    shown = " ".join(p.metavar if p.required else f"[{p.metavar}]" for p in after)
    words = click.argument("words", nargs=-1, metavar=f"[REPO] {shown}".strip(),
                           required=any(p.required for p in after))
    return lambda function: words(s3_options(function))


def split_words(words: tuple[str, ...], after: tuple[Positional, ...], *, server: str | None
                ) -> tuple[Location | None, dict[str, str | None]]:
    """REPO (None with --server) and the values of the arguments `after`, by name."""
    repo_word, own = (None, list(words)) if server is not None else (
        (words[0], list(words[1:])) if words else (None, []))
    context = click.get_current_context(silent=True)  # for the hint naming the command's help
    if len(own) > len(after):
        raise click.UsageError(f"Got unexpected extra argument ({own[len(after)]})", context)
    missing = [p.metavar for p in after[len(own):] if p.required]
    if missing:
        raise click.UsageError(f"Missing argument '{missing[0]}'.", context)
    repo_path = RepositoryLocation().convert(repo_word, None, None) if repo_word is not None else None
    return repo_path, {p.name: own[i] if i < len(own) else None for i, p in enumerate(after)}


def connect(repo_path: Location | None, server: str | None, token_file: Path | None,
            *, repo_name: str = "REPO") -> ServerClient | None:
    """The server to ask, or None when the command works on the repository at `repo_path`:
    exactly one of the two is to be given."""
    if server is None:
        if repo_path is None:
            raise UsageError(f"missing argument '{repo_name}'",
                             hint=f"Give {repo_name}, or --server URL --token-file FILE to ask a "
                                  "running CPS server.")
        return None
    if repo_path is not None:
        raise UsageError(f"give {repo_name} or --server, not both",
                         hint=f"{repo_name} reads a repository here; --server asks a server, "
                              "which reads its own.")
    if token_file is None:
        raise UsageError("--server needs --token-file",
                         hint="Give a file whose first line is a token from 'cps server token "
                              "create', or set CPS_TOKEN_FILE.")
    return ServerClient(server, read_token(token_file))


def pick_server_database(client: ServerClient, db_id: str | None) -> str:
    """The database meant: the one given, or the only one the server protects."""
    if db_id is not None:
        return db_id
    known = [d["db_id"] for d in client.get("/api/v1/databases")]
    if len(known) == 1:
        return str(known[0])
    raise UsageError(f"the server protects {len(known) or 'no'} databases",
                     hint=("Name one with --db: " + ", ".join(known) + ".") if known else
                     "Configure one in the server's [[database]] tables.")


def run_job(client: ServerClient, job: dict[str, Any], *, as_json: bool) -> dict[str, Any]:
    """Wait for the server's `job`, with a progress bar on a terminal; its result."""
    with progress_reporter(enabled=not as_json) as progress:
        return client.wait(job, progress)


def unpack(archive: Path, destination: Path) -> None:
    """Unpack the zip a server's export job made into `destination`; a member named to land
    outside it (an absolute path, '..') is refused before anything is written."""
    with zipfile.ZipFile(archive) as packed:
        root = destination.resolve()
        for member in packed.namelist():
            if not (root / member).resolve().is_relative_to(root):
                raise ServerError(f"the export holds a file outside its folder: {member!r}",
                                  hint=f"Nothing was unpacked into {destination}; report this.")
        packed.extractall(destination)
