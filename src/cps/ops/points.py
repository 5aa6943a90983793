"""Recovery points: made by the running protector when there is one, else here and now."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path

from ..capture import ProtectOptions, Protector, ask_protector
from ..errors import NotFound, RepositoryLocked, UsageError
from ..repository import RecoveryPoint, Repository

ANSWER_TIMEOUT = 60.0  # seconds a running protector has to answer


@dataclass(frozen=True, slots=True)
class PointMade:
    name: str
    txn: int
    chain: int
    created_at: int
    keep: bool
    by_running_protector: bool  # asked of the protector running, rather than captured here


def create_point(db: Path, repo: Repository, db_id: str, name: str | None, *,
                 keep: bool = False, timeout: float = ANSWER_TIMEOUT) -> PointMade:
    """A recovery point of `db` at its current committed position: the running protector makes
    it (having captured everything committed so far), or, when none runs, it is captured here.
    Without a name it is "manual <time>". A name already used is refused: a second point of it
    would replace the first, or make both ambiguous to restore and keep."""
    name = _free_name(repo, db_id, name)
    try:
        with repo.protector_lock(db_id):
            protector = Protector(db, repo, db_id, ProtectOptions(recovery_point_every=None))
            protector.start()
            try:
                point = protector.create_point(name, keep=keep)
            finally:
                protector.finish()
            return PointMade(point.name, point.txn, point.chain, point.created_at, point.keep,
                             False)
    except RepositoryLocked:
        answer = ask_protector(repo, db_id, name, timeout, keep=keep)
        return PointMade(str(answer["name"]), int(str(answer["txn"])),
                         int(str(answer["chain"])), int(str(answer["created_at"])), keep, True)


def _free_name(repo: Repository, db_id: str, name: str | None) -> str:
    """`name`, refused if a point has it; without one, "manual <time>", numbered if two are made
    within a second."""
    points, _unreadable = repo.points(db_id)
    names = {p.name for p in points}
    if name is None:
        default = time.strftime("manual %Y-%m-%dT%H:%M:%SZ", time.gmtime())
        return next(n for n in (default, *(f"{default} ({k})" for k in range(2, len(names) + 2)))
                    if n not in names)
    taken = [p for p in points if p.name == name]
    if taken:
        raise UsageError(f"{db_id} has a recovery point named {name!r} already, at transaction "
                         f"{taken[0].txn}", hint="Choose another name; 'cps timeline' lists the "
                                                  "recovery points. Nothing was made.")
    return name


def set_keep(repo: Repository, db_id: str, name: str, keep: bool) -> RecoveryPoint:
    """Keep the recovery point `name` whatever the retention policy, or let retention decide."""
    points, _unreadable = repo.points(db_id)
    matches = [p for p in points if p.name == name]
    known = ", ".join(repr(p.name) for p in points[-8:]) or "none"
    if not matches:
        raise NotFound(f"no recovery point named {name!r}",
                       hint=f"Recovery points of {db_id}: {known}.")
    if len(matches) > 1:  # made before names in use were refused
        raise UsageError(f"{len(matches)} recovery points are named {name!r}",
                         hint=f"Recovery points of {db_id}: {known}.")
    point = dataclasses.replace(matches[0], keep=keep)
    repo.write_point(db_id, point)  # the same file name: the point is replaced whole
    return point
