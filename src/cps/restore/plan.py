"""Planning a restore: from a catalog and a target to the full backups and the log to apply.

Pure: no file is read here, so every case (before the first full backup, after the last segment,
inside a gap between chains, a missing segment, a range prune removed) is tested on made-up
catalogs. A target resolves only against what the catalog proves (catalog.py): a transaction in a
span, a time a span names. Otherwise the plan is refused, with `TargetNotCovered` when the
repository does not cover the target (never captured, or removed by prune) and `TargetDamaged`
when it should but a file it needs is gone, each naming the range and the restorable ones. With
`best_effort`, a refused target gives instead the latest provable state before it, and the plan
says why in `shortfall`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from ..errors import RestoreError, TargetDamaged, TargetNotCovered
from ..repository import FullRef, SegmentRef
from ..repository.catalog import PRUNED, Catalog, ChainView, Hole, Span
from .targets import Target, format_ms

HINT_SPANS = 6  # restorable ranges a refusal lists, the newest
NEVER = 1 << 62  # a time after every other (ms)


@dataclass(frozen=True, slots=True)
class Base:
    """A full backup to start from, and the log after it up to the target."""

    full: FullRef
    segments: tuple[SegmentRef, ...]


@dataclass(frozen=True, slots=True)
class RestorePlan:
    db_id: str
    chain: int
    bases: tuple[Base, ...]  # the nearest full backup first; a later one serves if one cannot be read
    last_txn: int  # apply transactions up to this one
    stop_time: int | None  # and, for a time target, only while they committed at or before it
    shortfall: str | None = None  # with best effort: why the plan stops before its target

    @property
    def full(self) -> FullRef:
        return self.bases[0].full

    @property
    def segments(self) -> tuple[SegmentRef, ...]:
        return self.bases[0].segments


def plan_restore(catalog: Catalog, target: Target, *, best_effort: bool = False) -> RestorePlan:
    if not catalog.spans:
        raise TargetNotCovered(f"the repository holds no restorable full backup of {catalog.db_id}",
                               hint="Run 'cps protect' until its first full backup finishes, and "
                                    "'cps timeline' to see what the repository holds.")
    try:
        return _plan(catalog, target)
    except (TargetNotCovered, TargetDamaged) as refused:
        if not best_effort or (before := _provable_before(catalog, target)) is None:
            raise
        span, txn = before
        return replace(_plan_in(catalog, span, txn, None), shortfall=refused.message)


def _plan(catalog: Catalog, target: Target) -> RestorePlan:
    if target.kind == "point":
        return _plan_txn(catalog, _point_txn(catalog, str(target.value)))
    if target.kind == "latest":
        return _plan_latest(catalog)
    assert isinstance(target.value, int)
    if target.kind == "txn":
        return _plan_txn(catalog, target.value)
    return _plan_time(catalog, target.value)


def _plan_latest(catalog: Catalog) -> RestorePlan:
    newest = catalog.newest
    assert newest is not None  # there is a span
    span = newest.span_of(newest.last_txn)
    if span is not None:
        return _plan_in(catalog, span, newest.last_txn, None)
    hole = newest.hole_of(newest.last_txn)
    assert hole is not None
    raise TargetDamaged(f"the latest captured transaction is {newest.last_txn}, but "
                        f"{hole.describe()}", hint=_best_effort_hint(catalog))


def _plan_txn(catalog: Catalog, txn: int) -> RestorePlan:
    chain = catalog.chain_of(txn)
    if chain is None:
        where = (f"after the latest captured transaction, {catalog.last_txn}"
                 if txn > catalog.last_txn else "in no chain of the repository")
        raise TargetNotCovered(f"transaction {txn} is {where}", hint=_ranges_hint(catalog))
    span = chain.span_of(txn)
    if span is not None:
        return _plan_in(catalog, span, txn, None)
    hole = chain.hole_of(txn)
    assert hole is not None
    raise _refusal(f"transaction {txn} is not restorable: {hole.describe()}", hole, catalog)


def _plan_time(catalog: Catalog, when: int) -> RestorePlan:
    naming = [s for s in catalog.spans if s.names(when)]
    if naming:
        span = naming[-1]
        return _plan_in(catalog, span, span.last_txn, when)
    hole = _hole_at(catalog, when)
    if hole is not None:
        raise _refusal(f"{format_ms(when)} is not restorable: {hole.describe()}", hole, catalog)
    spans = catalog.spans
    if when < spans[0].start_time:
        raise TargetNotCovered(f"{format_ms(when)} is before the earliest restorable time, "
                               f"{format_ms(spans[0].start_time)}", hint=_ranges_hint(catalog))
    latest_end = max(s.end_time for s in spans)
    if when >= latest_end:
        raise TargetNotCovered(
            f"{format_ms(when)} is after the latest time the repository proves, "
            f"{format_ms(latest_end - 1)}", hint=_after_latest_hint(catalog))
    following = next((c for c in catalog.chains if c.spans and c.spans[0].start_time > when),
                     None)
    why = (f": chain {following.chain.chain} started because {following.chain.reason}"
           if following is not None else "")
    raise TargetNotCovered(f"{format_ms(when)} is in a gap the repository does not cover{why}",
                           hint=_ranges_hint(catalog))


def _plan_in(catalog: Catalog, span: Span, txn: int, when: int | None) -> RestorePlan:
    """The plan for transaction `txn` of `span` (with `when`, the state at that time, which the
    span names): every full backup of the span that is not past the target is a base, the
    nearest first."""
    bases = []
    for full, start in zip(reversed(span.fulls), reversed(span.full_times), strict=True):
        if full.txn > txn or (when is not None and start > when):
            continue
        log = tuple(s for s in span.segments if s.last_txn > full.txn and s.first_txn <= txn
                    and (when is None or s.first_time <= when))
        bases.append(Base(full, log))
    return RestorePlan(catalog.db_id, span.chain, tuple(bases), txn, when)


def _hole_at(catalog: Catalog, when: int) -> Hole | None:
    """The hole whose transactions came about `when`, as far as the times around it tell (a hole
    at the end of a chain reaches to the next chain's start)."""
    chains = catalog.chains
    for index, chain in enumerate(chains):
        for hole in chain.holes:
            after = hole.after_time if hole.after_time is not None else 0
            before = hole.before_time if hole.before_time is not None else _next_start(
                chains[index + 1:])
            if after <= when < before:
                return hole
    return None


def _next_start(later: tuple[ChainView, ...]) -> int:
    starts = [c.spans[0].start_time for c in later if c.spans]
    return starts[0] if starts else NEVER


def _refusal(message: str, hole: Hole, catalog: Catalog) -> RestoreError:
    if hole.kind == PRUNED:
        return TargetNotCovered(message, hint=_ranges_hint(catalog))
    return TargetDamaged(message, hint=_best_effort_hint(catalog))


def _provable_before(catalog: Catalog, target: Target) -> tuple[Span, int] | None:
    """The latest state the repository proves before `target`: what best effort restores."""
    spans = catalog.spans
    if target.kind == "latest":
        span = max(spans, key=lambda s: s.last_txn)
        return span, span.last_txn
    if target.kind == "time":
        assert isinstance(target.value, int)
        when = target.value
        earlier = [s for s in spans if s.start_time <= when]
        return (earlier[-1], earlier[-1].last_txn) if earlier else None
    txn = _point_txn(catalog, str(target.value)) if target.kind == "point" else target.value
    assert isinstance(txn, int)
    earlier = [s for s in spans if s.first_txn <= txn]
    if not earlier:
        return None
    span = max(earlier, key=lambda s: s.first_txn)
    return span, min(span.last_txn, txn)


def _point_txn(catalog: Catalog, name: str) -> int:
    matches = [p for p in catalog.points if p.name == name]
    if not matches:
        known = ", ".join(repr(p.name) for p in catalog.points[-8:]) or "none"
        lost = (f" {len(catalog.unreadable_points)} point file(s) cannot be read, so their names "
                "are unknown." if catalog.unreadable_points else "")
        raise TargetNotCovered(f"no recovery point named {name!r}",
                               hint=f"Recovery points of {catalog.db_id}: {known}.{lost}")
    if len(matches) > 1:
        raise RestoreError(f"{len(matches)} recovery points are named {name!r}",
                           hint="Restore with --txn, using the one 'cps timeline' shows.")
    return matches[0].txn


def _ranges_hint(catalog: Catalog) -> str:
    spans = catalog.spans
    parts = [f"transactions {s.first_txn} to {s.last_txn} ({format_ms(s.start_time)} to "
             f"{format_ms(s.end_time - 1)})" for s in spans[-HINT_SPANS:]]
    more = f" and {len(spans) - HINT_SPANS} earlier ranges" if len(spans) > HINT_SPANS else ""
    return "Restorable: " + "; ".join(parts) + more + ". See 'cps timeline'."


def _best_effort_hint(catalog: Catalog) -> str:
    return ("Restore the latest state before it with --best-effort, and run 'cps timeline' to "
            "see what is missing. " + _ranges_hint(catalog))


def _after_latest_hint(catalog: Catalog) -> str:
    if catalog.protector_running:
        return ("The protector makes commits durable within its sync interval: try again in a "
                "moment, or restore --latest. " + _ranges_hint(catalog))
    return ("No protector is running, so nothing after its last capture is covered. "
            + _ranges_hint(catalog))
