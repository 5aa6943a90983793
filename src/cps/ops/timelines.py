"""The timelines of a repository's databases."""

from __future__ import annotations

from ..repository import DrillRecord, Repository
from ..repository.catalog import load_catalog
from ..restore import Timeline, build_timeline


def timelines(repo: Repository, db_id: str | None = None) -> list[Timeline]:
    """The timeline of `db_id`, or of every database the repository holds (in name order), with
    its restore drills."""
    names = [db_id] if db_id is not None else [d.db_id for d in repo.databases()]
    return [build_timeline(load_catalog(repo, name), drills=_drills(repo, name)) for name in names]


def _drills(repo: Repository, db_id: str) -> tuple[DrillRecord, ...]:
    records, _unreadable = repo.drills(db_id)  # advisory: a damaged one is left out
    return tuple(record for _key, record in records)
