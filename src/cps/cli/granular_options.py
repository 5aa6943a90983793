"""What the granular-recovery commands share: the repository, the point in time, the cache, and
the way they print where a point is."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from ..granular import Snapshot, SnapshotCache, point_target
from ..granular.snapshots import CACHE_ENV, DEFAULT_KEEP
from ..restore import Target, format_ms
from . import output
from .repo_options import (
    db_option,
    open_repository,
    passphrase_file_option,
    pick_database,
    repository_argument,
)

Command = Callable[..., Any]


@dataclass(frozen=True, slots=True)
class Source:
    """A repository's database and a cache of its points; `target` when the command takes one."""

    repo_path: Path
    db_id: str | None
    cache_dir: Path | None
    keep_cached: int
    passphrase_file: Path | None
    target: Target | None = None

    def open(self, target: Target | None = None) -> Snapshot:
        """The database at `target` (default: the command's point), restoring it if not cached."""
        chosen = target or self.target
        assert chosen is not None, "a command without point options named no point"
        repo = open_repository(self.repo_path, self.passphrase_file)
        name = pick_database(repo, self.db_id)
        snapshot = SnapshotCache(self.cache_dir, self.keep_cached).open(repo, name, chosen)
        if snapshot.materialized:
            output.note(f"restored {name} at transaction {snapshot.txn} into the cache in "
                        f"{snapshot.seconds:.1f} s")
        return snapshot


_SOURCE_KEYS = ("repo_path", "db_id", "cache_dir", "keep_cached", "passphrase_file")
_POINT_KEYS = ("latest", "at_time", "recovery_point", "txn")


def source_options(*, point: bool) -> Callable[[Command], Command]:
    """REPO, --db, the cache options and, with `point`, --latest/--at/--recovery-point/--txn;
    the command receives them as one `source` argument."""
    def decorate(command: Command) -> Command:
        @functools.wraps(command)
        def run(**kwargs: Any) -> Any:
            values = {key: kwargs.pop(key) for key in _SOURCE_KEYS}
            target = None
            if point:
                latest, at_time, recovery_point, txn = (kwargs.pop(key) for key in _POINT_KEYS)
                target = point_target(latest=latest, at=at_time, recovery_point=recovery_point,
                                      txn=txn)
            return command(source=Source(**values, target=target), **kwargs)

        options: list[Callable[[Any], Any]] = [repository_argument(), db_option()]
        if point:
            options += _point_options()
        options += _cache_options()
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


def _cache_options() -> list[Callable[[Command], Command]]:
    return [
        click.option("--cache", "cache_dir", type=click.Path(file_okay=False, path_type=Path),
                     help=f"Where restored points are kept.  [default: ${CACHE_ENV}, else "
                          "~/.cache/cps]"),
        click.option("--keep-cached", type=click.IntRange(min=1), default=DEFAULT_KEEP,
                     show_default=True, help="Restored points kept in the cache (the least "
                                             "recently used go first)."),
        passphrase_file_option,
    ]


def describe(snapshot: Snapshot) -> dict[str, Any]:
    """The point a result is from, for JSON output."""
    data = snapshot.describe()
    data["txn_time"] = format_ms(snapshot.txn_time) if snapshot.txn_time is not None else None
    return data


def as_of(snapshot: Snapshot) -> str:
    """A heading for text output: which point this is."""
    when = f" ({format_ms(snapshot.txn_time)})" if snapshot.txn_time is not None else ""
    name = "" if snapshot.label.startswith("txn ") else f" '{snapshot.label}'"
    return f"{snapshot.db_id} at transaction {snapshot.txn}{name}{when}"


def day_time(seconds: int) -> str:
    try:
        return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M")
    except (OverflowError, OSError, ValueError):
        return str(seconds)


def cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def place(mailbox: str, folder: list[str] | tuple[str, ...]) -> str:
    return "/".join((mailbox, *folder))
