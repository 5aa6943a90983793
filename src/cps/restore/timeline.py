"""The timeline of a database: what `cps timeline` shows, as data the CLI and an API render.

Everything in it comes from the catalog (catalog.py): the chains with what they can restore
(spans), what prune removed and what is missing (holes), the recovery points, and whether a
protector is at work now, read from its lock and its status file rather than from the status file
alone (a killed protector leaves a status that says "protecting"); and, from the drill records,
the last restore drill and the last one that passed.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Any

from ..repository import DrillRecord, ProtectorStatus
from ..repository.catalog import Catalog, ChainView
from .targets import format_ms

STALE_SECONDS = 30.0  # a running protector writes its status every second


@dataclass(frozen=True, slots=True)
class ProtectorView:
    """The protector of one database as the repository sees it now."""

    running: bool  # a process holds the database's protector lock
    condition: str  # "protecting", "failing", "not reporting", "stopped", "not running", "unknown"
    status: ProtectorStatus | None
    age_seconds: float | None  # since the status was written

    def describe(self) -> str:
        said = self._said()
        return said + _uploads(self.status) if self.status is not None else said

    def _said(self) -> str:
        status = self.status
        seen = "" if self.age_seconds is None else f", last seen {self.age_seconds:.0f} s ago"
        if self.condition == "protecting":
            assert status is not None
            lag = (f", capture lag p50 {status.lag_p50:.3f} s, p99 {status.lag_p99:.3f} s"
                   if status.lag_p50 is not None and status.lag_p99 is not None else ", idle")
            return f"protecting: transaction {status.last_txn} captured{lag}"
        if self.condition == "failing":
            assert status is not None
            return (f"running, but the repository cannot be written ({status.error}); captured "
                    f"transactions after {status.durable_txn} are kept and retried")
        if self.condition == "not reporting":
            return f"running, but its status has not been written for a while{seen}"
        if self.condition == "stopped":
            assert status is not None
            return f"not running: stopped cleanly at {format_ms(status.updated_at)}"
        if self.condition == "not running":
            return f"not running: it did not stop cleanly{seen}"
        return "not running" if not self.running else "running"


@dataclass(frozen=True, slots=True)
class Timeline:
    catalog: Catalog
    protector: ProtectorView
    drills: tuple[DrillRecord, ...] = ()  # the drill records, oldest first

    @property
    def last_drill(self) -> DrillRecord | None:
        return self.drills[-1] if self.drills else None

    @property
    def last_passed_drill(self) -> DrillRecord | None:
        return next((d for d in reversed(self.drills) if d.passed), None)

    @property
    def db_id(self) -> str:
        return self.catalog.db_id

    @property
    def earliest(self) -> int | None:
        spans = self.catalog.spans
        return min(s.start_time for s in spans) if spans else None

    @property
    def latest(self) -> int | None:
        """The latest time a restore by time can name (inclusive)."""
        spans = self.catalog.spans
        return max(s.end_time for s in spans) - 1 if spans else None

    @property
    def latest_txn(self) -> int | None:
        spans = self.catalog.spans
        return max(s.last_txn for s in spans) if spans else None

    def to_json(self) -> dict[str, Any]:
        catalog = self.catalog
        status = self.protector.status
        lag = None
        if self.protector.condition == "protecting" and status is not None:
            lag = {"p50_seconds": status.lag_p50, "p99_seconds": status.lag_p99,
                   "status_age_seconds": self.protector.age_seconds}
        return {
            "db_id": catalog.db_id,
            "earliest": _time(self.earliest), "latest": _time(self.latest),
            "latest_txn": self.latest_txn,
            "chains": _chains_json(catalog.chains),
            "recovery_points": [{"name": p.name, "txn": p.txn, "chain": p.chain,
                                 "created_at": format_ms(p.created_at), "scheduled": p.scheduled,
                                 "keep": p.keep} for p in catalog.points],
            "unreadable_recovery_points": [{"path": u.path, "txn": u.txn, "error": u.error}
                                           for u in catalog.unreadable_points],
            # The status file's fields (its `state` is what it said), and what is known now.
            "protector": {**(dataclasses.asdict(status) if status else {}),
                          "running": self.protector.running,
                          "condition": self.protector.condition,
                          "description": self.protector.describe(),
                          "status_age_seconds": self.protector.age_seconds},
            "capture_lag": lag,
            "last_drill": _drill_json(self.last_drill),
            "last_passed_drill": _drill_json(self.last_passed_drill),
            "upload": upload_json(status),
            "warnings": list(catalog.warnings),
        }


def build_timeline(catalog: Catalog, now: float | None = None,
                   drills: tuple[DrillRecord, ...] = ()) -> Timeline:
    current = time.time() if now is None else now
    status = catalog.status
    age = None if status is None else round(max(0.0, current - status.updated_at / 1000), 3)
    return Timeline(catalog, ProtectorView(catalog.protector_running,
                                           _condition(catalog.protector_running, status, age),
                                           status, age), drills)


def _uploads(status: ProtectorStatus) -> str:
    """What the status says of uploads to the bucket: nothing for a repository in a folder."""
    if status.uploaded_txn is None:
        return ""
    if status.uploaded_txn == status.durable_txn and not status.upload_waiting_files:
        outage = "" if status.upload_recovered_at is None or status.upload_failed_at is None \
            else (f" (uploads failed from {format_ms(status.upload_failed_at)} to "
                  f"{format_ms(status.upload_recovered_at)}, then caught up)")
        return f"; in the bucket through transaction {status.uploaded_txn}{outage}"
    lag = f" for {status.upload_lag:.0f} s" if status.upload_lag is not None else ""
    failing = (f", uploads failing since {format_ms(status.upload_failed_at)}: "
               f"{status.upload_error}") if status.upload_error and status.upload_failed_at else ""
    return (f"; captured locally through transaction {status.durable_txn}, in the bucket "
            f"through {status.uploaded_txn} ({status.upload_waiting_files} files, "
            f"{status.upload_waiting_bytes / (1 << 20):.1f} MiB waiting{lag}{failing})")


def upload_json(status: ProtectorStatus | None) -> dict[str, Any] | None:
    """Captured locally against durable off-host, for a repository in a bucket."""
    if status is None or status.uploaded_txn is None:
        return None
    return {"captured_locally_txn": status.durable_txn, "off_host_txn": status.uploaded_txn,
            "off_host_through": _time(status.uploaded_through or None),
            "waiting_files": status.upload_waiting_files,
            "waiting_bytes": status.upload_waiting_bytes, "lag_seconds": status.upload_lag,
            "error": status.upload_error,
            "last_outage": None if status.upload_failed_at is None else {
                "from": format_ms(status.upload_failed_at),
                "until": _time(status.upload_recovered_at)}}


def _condition(running: bool, status: ProtectorStatus | None, age: float | None) -> str:
    if status is None:
        return "unknown"
    if running:
        if status.error:
            return "failing"
        return "protecting" if age is not None and age <= STALE_SECONDS else "not reporting"
    return "stopped" if status.state == "stopped" else "not running"


def _chains_json(chains: tuple[ChainView, ...]) -> list[dict[str, Any]]:
    found = []
    previous_end: int | None = None
    for view in chains:
        start = view.spans[0].start_time if view.spans else view.chain.started_at
        end = view.spans[-1].end_time - 1 if view.spans else None
        found.append({
            "chain": view.chain.chain, "reason": view.chain.reason, "problem": view.problem,
            "started_at": _time(view.chain.started_at or None),
            "first_txn": view.first_txn, "last_txn": view.last_txn,
            "last_time": _time(end), "restorable": view.restorable,
            "removed": view.removed, "incomplete": view.incomplete,
            "gap_before": None if previous_end is None or not view.spans else {
                "from": _time(previous_end), "to": _time(start)},
            "spans": [{"first_txn": s.first_txn, "last_txn": s.last_txn,
                       "from": _time(s.start_time), "until": _time(s.end_time - 1),
                       "fulls": [f.txn for f in s.fulls]} for s in view.spans],
            "holes": [{"first_txn": h.first_txn, "last_txn": h.last_txn, "kind": h.kind,
                       "after": _time(h.after_time), "before": _time(h.before_time),
                       "description": h.describe()} for h in view.holes],
            "fulls": [{"txn": f.txn, "taken_at": format_ms(f.taken_at)} for f in view.fulls],
            "segments": len(view.segments),
        })
        if view.spans:
            previous_end = end
    return found


def _drill_json(drill: DrillRecord | None) -> dict[str, Any] | None:
    if drill is None:
        return None
    return {"drill_id": drill.drill_id, "started_at": format_ms(drill.started_at),
            "ended_at": format_ms(drill.ended_at), "passed": drill.passed,
            "points": len(drill.points), "failed": len(drill.failed)}


def _time(ms: int | None) -> str | None:
    return None if ms is None else format_ms(ms)
