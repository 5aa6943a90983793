"""Planning a restore: from a catalog and a target to the full backup and segments to apply.

Pure: no file is read here, so every case (before the first full, after the last segment, inside
a gap between chains, a missing segment) is tested on made-up catalogs. Errors name the nearest
restorable points.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import RestoreError, TargetNotCovered
from ..repository import FullRef, SegmentRef
from .catalog import Catalog, ChainView
from .targets import Target, format_ms


@dataclass(frozen=True, slots=True)
class RestorePlan:
    db_id: str
    chain: int
    full: FullRef
    segments: tuple[SegmentRef, ...]
    last_txn: int  # apply transactions up to this one
    stop_time: int | None  # and, for a time target, only those first seen at or before this time


def plan_restore(catalog: Catalog, target: Target, synced_through: int | None = None,
                 *, best_effort: bool = False) -> RestorePlan:
    """`synced_through`: the time up to which the running protector has captured every commit
    (from its status), which extends the last chain's coverage to times after its last commit.
    With a segment missing from the newest chain, "latest" is an error unless `best_effort`."""
    chains = catalog.restorable_chains
    if not chains:
        raise TargetNotCovered(f"the repository holds no complete full backup of {catalog.db_id}",
                               hint="Run 'cps protect' until its first full backup finishes.")
    if target.kind == "point":
        return _plan_txn(catalog, _point_txn(catalog, str(target.value)), None)
    if target.kind == "latest":
        newest = chains[-1]
        if newest.missing_after() is not None and not best_effort:
            later = max(s.last_txn for s in newest.segments)
            raise RestoreError(
                f"the log after transaction {newest.last_txn} is missing: transactions up to "
                f"{later} were captured but cannot be restored",
                hint=f"Restore transaction {newest.last_txn} with --best-effort (or --txn "
                     f"{newest.last_txn}), and run 'cps timeline' to see the gap.")
        return _plan_txn(catalog, newest.last_txn, None)
    if target.kind == "txn":
        assert isinstance(target.value, int)
        return _plan_txn(catalog, target.value, None)
    assert isinstance(target.value, int)
    return _plan_time(catalog, target.value, synced_through)


def _plan_txn(catalog: Catalog, txn: int, stop_time: int | None) -> RestorePlan:
    view = catalog.chain_of(txn)
    if view is None:
        raise TargetNotCovered(f"transaction {txn} is not restorable", hint=_ranges_hint(catalog))
    full = max((f for f in view.fulls if f.txn <= txn), key=lambda f: f.txn)
    segments = tuple(s for s in view.segments if s.last_txn > full.txn and s.first_txn <= txn)
    return RestorePlan(catalog.db_id, view.chain.chain, full, segments, txn, stop_time)


def _plan_time(catalog: Catalog, when: int, synced_through: int | None) -> RestorePlan:
    chains = catalog.restorable_chains
    view = next((c for c in reversed(chains) if c.chain.started_at <= when), None)
    if view is None:
        raise TargetNotCovered(
            f"{format_ms(when)} is before the earliest restorable point",
            hint=_ranges_hint(catalog))
    covered_until = view.last_seen
    if view is chains[-1] and synced_through is not None:
        covered_until = max(covered_until, synced_through)
    if when > covered_until:
        where = "after the latest captured transaction" if view is chains[-1] else "inside a gap"
        raise TargetNotCovered(f"{format_ms(when)} is {where}", hint=_ranges_hint(catalog))
    reachable = [s for s in view.segments if s.last_txn <= view.last_txn and s.first_seen <= when]
    upper = max([view.first_txn, *(s.last_txn for s in reachable)])
    fulls = [f for f in view.fulls if f.txn <= upper and _full_time(view, f) <= when]
    full = max(fulls or [view.fulls[0]], key=lambda f: f.txn)
    segments = tuple(s for s in reachable if s.last_txn > full.txn)
    return RestorePlan(catalog.db_id, view.chain.chain, full, segments, upper, when)


def _full_time(view: ChainView, full: FullRef) -> int:
    known = view.time_of(full.txn)
    return full.taken_at if known is None else known


def _point_txn(catalog: Catalog, name: str) -> int:
    matches = [p for p in catalog.points if p.name == name]
    if not matches:
        known = ", ".join(repr(p.name) for p in catalog.points[-8:]) or "none"
        raise TargetNotCovered(f"no recovery point named {name!r}",
                               hint=f"Recovery points of {catalog.db_id}: {known}.")
    if len(matches) > 1:
        raise RestoreError(f"{len(matches)} recovery points are named {name!r}",
                           hint="Restore with --txn, using the one 'cps timeline' shows.")
    return matches[0].txn


def _ranges_hint(catalog: Catalog) -> str:
    parts = []
    for view in catalog.restorable_chains:
        first, last = view.first_txn, view.last_txn
        start = format_ms(view.chain.started_at)
        end = format_ms(view.last_seen)
        parts.append(f"transactions {first} to {last} ({start} to {end})")
    return "Restorable: " + "; ".join(parts) + "."
