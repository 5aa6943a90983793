"""Standby copies: created, replayed round after round, reported and promoted (restore/standby.py).

Two locks sit beside each copy. `<copy>.standby.lock` is held for each round and for a promotion,
so a promotion waits for the round under way and then has the copy to itself. `<copy>.standby.run`
is held by the one process replaying the copy for as long as it runs: a second one is refused, and
`cps standby status` can tell whether replay is running. Both are advisory locks (flock) that die
with their process.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..errors import CPSError, StandbyError
from ..repository import Repository, locks
from ..repository.standby_record import PROMOTED, StandbyRecord, beside, write_record
from ..restore import Target, format_ms, resolve
from ..restore.standby import Round, begin, discard, open_record, promote, replay

logger = logging.getLogger(__name__)

RUN_LOCK = ".standby.run"  # beside the copy: held by the one process replaying it
ROUND_LOCK = ".standby.lock"  # beside the copy: held by each round and by a promotion
STALE_MS = 60_000  # a running replay that has not finished a round for this long is stale


def create_standby(repo: Repository, db_id: str, copy: Path, *, repository: str, lag_ms: int,
                   force: bool = False) -> Round:
    """A new standby of `db_id` at `copy`, seeded by its first round when anything is old enough
    for its lag (otherwise a later round seeds it)."""
    with _round_lock(copy):
        if force:
            discard(copy)
        begin(repo, db_id, copy, repository=repository, lag_ms=lag_ms, now_ms=_now_ms())
    return replay_round(repo, copy)


def replay_round(repo: Repository, copy: Path) -> Round:
    with _round_lock(copy), repo.reader_lock():
        return replay(repo, copy, _now_ms())


def keep_replaying(repo: Repository, copy: Path, interval: float, stop: threading.Event,
                   on_round: Callable[[Round], None]) -> StandbyRecord:
    """Replay a round every `interval` seconds until `stop` is set or the copy is promoted; the
    record as it was last. A round that fails (the repository out of reach, a damaged file) is
    noted in the record, logged once while it lasts, and tried again the next time."""
    with locks.hold(beside(copy, RUN_LOCK), exclusive=True):
        failing = ""
        while not stop.is_set():
            try:
                done = replay_round(repo, copy)
            except StandbyError:
                record = open_record(copy)
                if record.state == PROMOTED:  # by `cps standby promote`, while this ran
                    return record
                raise
            except CPSError as error:
                if error.message != failing:
                    logger.error("replay of %s failed: %s", copy, error.message)
                failing = error.message
                _note_problem(copy, error.message)
            else:
                failing = ""
                on_round(done)
            stop.wait(interval)
        return open_record(copy)


def promote_standby(repo: Repository, copy: Path, target: Target) -> Round:
    """Make the copy the database at `target` (by log, or restored whole when the target is
    behind it), checked, and writable: replay stops for good."""
    with _round_lock(copy), repo.reader_lock():
        db_id = open_record(copy).db_id
        catalog, plan = resolve(repo, db_id, target)
        return promote(repo, copy, catalog, plan, _now_ms())


def standby_status(copy: Path) -> dict[str, Any]:
    """What `cps standby status` shows: the record, how far behind the copy is, and its health:
    `promoted`; `failing` (the last round could not reach its target); `waiting` (nothing old
    enough for its lag yet); `stopped` (no process replays it); `stale` (replay runs but has not
    finished a round for STALE_MS); or `ok`."""
    record = open_record(copy)
    now = _now_ms()
    running = locks.is_held(beside(copy, RUN_LOCK))
    return {
        "copy": str(copy), "db_id": record.db_id, "repository": record.repository,
        "state": record.state, "health": _health(record, now, running),
        "replay_running": running, "lag_setting": record.lag_ms / 1000,
        "chain": record.chain, "txn": record.txn, "txn_time": _time(record.txn_time),
        "replay_lag": (now - record.txn_time) / 1000 if record.txn_time else None,
        "repository_txn": record.repository_txn,
        "transactions_behind": max(0, record.repository_txn - record.txn) if record.chain else None,
        "replayed_at": _time(record.replayed_at), "seeds": record.seeds,
        "seed_reason": record.seed_reason, "problem": record.problem,
        "promoted_at": _time(record.promoted_at),
    }


def _health(record: StandbyRecord, now: int, running: bool) -> str:
    if record.state == PROMOTED:
        return "promoted"
    if record.problem:
        return "failing"
    if record.chain == 0:
        return "waiting"
    if not running:
        return "stopped"
    return "stale" if now - record.replayed_at > STALE_MS else "ok"


def _note_problem(copy: Path, problem: str) -> None:
    """Under the round lock: a promotion between the failed round and this must not be undone."""
    with _round_lock(copy):
        record = open_record(copy)
        if record.state != PROMOTED:
            write_record(copy, replace(record, problem=problem))


def _round_lock(copy: Path) -> AbstractContextManager[None]:
    return locks.hold(beside(copy, ROUND_LOCK), exclusive=True, wait=True)


def _time(ms: int | None) -> str | None:
    return format_ms(ms) if ms else None


def _now_ms() -> int:
    return int(time.time() * 1000)
