"""The status of a protected database, as the API, the metrics and the console show it.

It joins what the protector process says as it goes (its events, kept by the supervisor) with
what the repository holds (its status file, its full backups and recovery points, its size). The
repository's side is read at most every REPOSITORY_EVERY seconds per database (its size every
SIZE_EVERY), so that a status request costs the same whatever the repository's size.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import CPSError
from ..repository.catalog import load_catalog
from ..restore import build_timeline, format_ms, upload_json

if TYPE_CHECKING:
    from .service import Service

REPOSITORY_EVERY = 2.0
SIZE_EVERY = 60.0
DRILLS_EVERY = 60.0  # a drill finished by the server is seen at once (StatusCache.forget)


@dataclass
class _Seen:
    at: float
    value: Any


class StatusCache:
    """What was read of each repository lately (see the module docstring)."""

    def __init__(self) -> None:
        self.seen: dict[tuple[str, str], _Seen] = {}
        self.lock = threading.Lock()

    def get(self, db_id: str, what: str, seconds: float, read: Any) -> Any:
        key = (db_id, what)
        with self.lock:
            seen = self.seen.get(key)
            if seen is not None and time.monotonic() - seen.at < seconds:
                return seen.value
        value = read()
        with self.lock:
            self.seen[key] = _Seen(time.monotonic(), value)
        return value

    def forget(self, db_id: str) -> None:
        """Read `db_id`'s repository afresh next time: it changed (a recovery point was made)."""
        with self.lock:
            for key in [k for k in self.seen if k[0] == db_id]:
                del self.seen[key]


def database_status(service: Service, db_id: str) -> dict[str, Any]:
    settings = service.settings(db_id)
    child = service.children[db_id]
    with child.lock:
        state = child.state
        protection = {
            "condition": _condition(state.running, state.ready, state.outage),
            "running": state.running, "ready": state.ready, "pid": state.pid,
            "restarts": state.restarts, "last_exit": state.last_exit, "outage": state.outage,
        }
        durable = {"txn": state.durable_txn, "through": state.synced_through or None,
                   "captured_bytes": state.captured_bytes}
        errors, error_counts = list(state.errors), dict(state.error_totals)
        seen_full, seen_point = state.last_full, state.last_point
        started = {"time": state.started_at} if state.started_at else None
    cache = service.status_cache
    held = cache.get(db_id, "repository", REPOSITORY_EVERY, lambda: _repository_side(service, db_id))
    last_full = _later(seen_full, held.get("last_full"))
    last_point = _later(seen_point, held.get("last_point"))
    every = settings.recovery_point_every
    return {
        "db_id": db_id, "path": str(settings.path), "repository": str(settings.repository),
        "protection": protection, "durable": durable,
        "capture_lag": held.get("capture_lag"), "upload": held.get("upload"),
        "last_transaction": held.get("last_transaction"),
        "last_full": last_full, "last_recovery_point": last_point,
        "next_full": _after(last_full, settings.full_every),
        # The protector counts its schedule of points from its start until it makes one.
        "next_recovery_point": _after(_later(last_point, started), every)
        if every is not None else None,
        "next_prune": service.next_prune.get(db_id),
        **cache.get(db_id, "drills", DRILLS_EVERY, lambda: _drills(service, db_id)),
        "next_drill": service.next_drill.get(db_id),
        "copy_to": str(settings.copy_to) if settings.copy_to else None,
        "next_copy": service.next_copy.get(db_id),
        "repository_bytes": cache.get(db_id, "size", SIZE_EVERY,
                                      lambda: _stored_bytes(service, db_id)),
        "errors": errors, "error_counts": error_counts,
        "repository_error": held.get("error"),
    }


def every_status(service: Service) -> list[dict[str, Any]]:
    """The status of every configured database, in configuration order, with ISO times."""
    return [with_times(database_status(service, d.id)) for d in service.config.databases]


def with_times(status: dict[str, Any]) -> dict[str, Any]:
    """`status` with its times to come as ISO 8601 too, beside the seconds since the epoch."""
    for key in ("next_full", "next_recovery_point", "next_prune", "next_drill", "next_copy"):
        if status.get(key) is not None:
            status[f"{key}_at"] = format_ms(int(status[key] * 1000))
    return status


def _condition(running: bool, ready: bool, outage: str | None) -> str:
    if outage:
        return "failing"
    if ready:
        return "protecting"
    return "starting" if running else "restarting"


def _repository_side(service: Service, db_id: str) -> dict[str, Any]:
    try:
        repo = service.repository(db_id)
        timeline = build_timeline(load_catalog(repo, db_id))
    except CPSError as error:
        return {"error": error.message, "upload": _upload_alone(service, db_id)}
    catalog = timeline.catalog
    status = catalog.status
    fulls = [f for c in catalog.chains for f in c.fulls]
    side: dict[str, Any] = {
        "capture_lag": {"p50_seconds": status.lag_p50, "p99_seconds": status.lag_p99}
        if status is not None else None,
        "upload": timeline.to_json()["upload"],
        "last_transaction": {"txn": timeline.latest_txn, "time": _seconds(timeline.latest)},
        "last_full": {"txn": fulls[-1].txn, "time": fulls[-1].taken_at / 1000} if fulls else None,
    }
    if catalog.points:
        point = catalog.points[-1]
        side["last_point"] = {"name": point.name, "txn": point.txn,
                              "time": point.created_at / 1000}
    return side


def _drills(service: Service, db_id: str) -> dict[str, Any]:
    """The last restore drill of `db_id` and the last that passed, from the drill records."""
    try:
        records, _unreadable = service.repository(db_id).drills(db_id)
    except CPSError:
        records = []
    drills = [record for _key, record in records]
    passed = [d for d in drills if d.passed]
    return {"last_drill": {"time": drills[-1].ended_at / 1000, "passed": drills[-1].passed,
                           "points": len(drills[-1].points), "failed": len(drills[-1].failed)}
            if drills else None,
            "last_passed_drill": {"time": passed[-1].ended_at / 1000} if passed else None}


def _upload_alone(service: Service, db_id: str) -> dict[str, Any] | None:
    """While the repository cannot be read whole (its bucket is down), the upload side of the
    protector's status as this host has it: in the upload spool, when one waits there."""
    try:
        return upload_json(service.repository(db_id).status(db_id))
    except CPSError:
        return None


def _later(first: dict[str, Any] | None, second: dict[str, Any] | None) -> dict[str, Any] | None:
    found = [x for x in (first, second) if x and x.get("time")]
    return max(found, key=lambda x: float(x["time"])) if found else None


def _after(last: dict[str, Any] | None, every: float) -> float | None:
    return float(last["time"]) + every if last else None


def _seconds(ms: int | None) -> float | None:
    return ms / 1000 if ms is not None else None


def _stored_bytes(service: Service, db_id: str) -> int | None:
    """The bytes of the repository's files; None while its storage cannot be listed."""
    try:
        listing = service.repository(db_id).storage.list("", recursive=True)
    except CPSError:
        return None
    return sum(entry.size for entry in listing)
