"""The timeline of a database as the console draws it: spans, gaps, full backups and recovery
points placed on one time axis (an SVG drawing WIDTH units wide), oldest on the left.

A span is a stretch of time any moment of which can be restored. Between two spans is a gap: a
new chain began (why is the chain's reason) or a part of the log is missing or was pruned (why is
the hole's description). Full backups and recovery points are marks on the axis.
"""

from __future__ import annotations

from dataclasses import dataclass

from ...repository.catalog import Catalog, Span
from ...restore import format_ms

WIDTH = 1000.0
TICKS = 6


@dataclass(frozen=True, slots=True)
class Bar:
    x: float
    width: float
    title: str  # what the drawing says of it when pointed at


@dataclass(frozen=True, slots=True)
class Mark:
    x: float
    title: str
    point: str  # how the browse page names the moment: txn:N or point:NAME


@dataclass(frozen=True, slots=True)
class Drawing:
    start_ms: int
    end_ms: int
    spans: list[Bar]
    gaps: list[Bar]
    fulls: list[Mark]
    points: list[Mark]
    ticks: list[tuple[float, str]]


def draw(catalog: Catalog, now_ms: int) -> Drawing | None:
    """The drawing of `catalog`, up to `now_ms`; None when nothing can be restored yet."""
    spans = catalog.spans
    if not spans:
        return None
    start = min(s.start_time for s in spans)
    end = max(now_ms, max(s.end_time for s in spans), start + 60_000)
    axis = _Axis(start, end)
    drawn = [axis.bar(s.start_time, s.end_time,
                      f"chain {s.chain}: transactions {s.first_txn} to {s.last_txn}, "
                      f"{format_ms(s.start_time)} to {format_ms(s.end_time - 1)}")
             for s in spans]
    gaps = [axis.bar(before.end_time, after.start_time, why)
            for before, after, why in _gaps(catalog) if after.start_time > before.end_time]
    fulls = [Mark(axis.x(f.taken_at), f"full backup at transaction {f.txn}, "
                  f"{format_ms(f.taken_at)}", f"txn:{f.txn}")
             for s in spans for f in s.fulls]
    points = [Mark(axis.x(p.created_at), f"recovery point {p.name}: transaction {p.txn}, "
                   f"{format_ms(p.created_at)}", f"point:{p.name}") for p in catalog.points]
    ticks = [(axis.x(ms), format_ms(ms)[:19].replace("T", " "))
             for ms in (start + (end - start) * i // (TICKS - 1) for i in range(TICKS))]
    return Drawing(start, end, drawn, gaps, fulls, points, ticks)


def _gaps(catalog: Catalog) -> list[tuple[Span, Span, str]]:
    """(the span before, the span after, why) for each pair of spans in a row, in time order."""
    found: list[tuple[Span, Span, str]] = []
    spans = sorted(catalog.spans, key=lambda s: s.start_time)
    chains = {c.chain.chain: c for c in catalog.chains}
    for before, after in zip(spans, spans[1:], strict=False):
        if after.chain != before.chain:
            why = f"a new chain ({after.chain}) began: {chains[after.chain].chain.reason}"
        else:
            holes = [h for h in chains[after.chain].holes
                     if before.last_txn < h.first_txn and h.last_txn < after.first_txn]
            why = "; ".join(h.describe() for h in holes) or "the log between them is missing"
        found.append((before, after, why))
    return found


class _Axis:
    def __init__(self, start: int, end: int) -> None:
        self.start = start
        self.scale = WIDTH / (end - start)

    def x(self, ms: int) -> float:
        return round(min(WIDTH, max(0.0, (ms - self.start) * self.scale)), 2)

    def bar(self, start: int, end: int, title: str) -> Bar:
        x = self.x(start)
        return Bar(x, max(1.0, self.x(end) - x), title)
