"""The catalog: what one database's backups cover, and what the repository can prove of it.

It is derived from file names (chains, full backups, segments, recovery points, prune records)
and from the small advisory files (the protector's status, recovery points), never from pages, so
planning and the timeline read no page. What it says:

- A **span** is a run of transactions the repository can restore one by one: a full backup and
  the unbroken log after it (other full backups inside it are other ways in). A time names a state
  of the span from `start_time` (inclusive) to `end_time` (exclusive): within that window every
  transaction committed at or before the time is provably in the span's log, and none after it.
- A **hole** is a run of transactions of a chain that the repository cannot restore: `pruned`
  (prune records name them) or `missing` (their log or full backup is gone, damaged by hand or
  never made durable). The end of a chain is known from everything that has seen it: later full
  backups, recovery points, the next chain's first transaction, prune records and the status's
  last durable transaction, so a missing last segment is a hole too, not a shorter chain.

A chain whose chain file is missing or damaged keeps its backups: its record is rebuilt from its
files (`problem` says why). A damaged status or point file is left out with a warning.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ..errors import CorruptFile, UnsupportedFormat
from ..repository import (
    Chain,
    ChainEnd,
    ChainFolder,
    FullRef,
    ProtectorStatus,
    PrunedRange,
    RecoveryPoint,
    Repository,
    SegmentRef,
    UnreadableFile,
)

PRUNED = "pruned"
MISSING = "missing"
# How long a transaction may take from stamping its commit time (the database's commit clock) to
# its frames being in the WAL: the WAL write and its fsync. A look at the WAL proves nothing about
# a transaction stamped this shortly before it.
COMMIT_MARGIN_MS = 1000


@dataclass(frozen=True, slots=True)
class Span:
    chain: int
    first_txn: int  # the transaction of its first full backup
    last_txn: int
    fulls: tuple[FullRef, ...]  # every full backup inside it, by transaction
    full_times: tuple[int, ...]  # from when each full backup's state is provably current
    segments: tuple[SegmentRef, ...]  # the log after its first full backup, in order
    start_time: int  # a time names a state of the span from here (inclusive) ...
    end_time: int  # ... to here (exclusive)

    def holds(self, txn: int) -> bool:
        return self.first_txn <= txn <= self.last_txn

    def names(self, when: int) -> bool:
        """Whether the state at time `when` is provably one of this span's."""
        return self.start_time <= when < self.end_time


@dataclass(frozen=True, slots=True)
class Hole:
    chain: int
    first_txn: int
    last_txn: int
    kind: str  # PRUNED or MISSING
    after_time: int | None  # the hole's transactions came after this time ...
    before_time: int | None  # ... and before this one, as far as the repository tells
    pruned_at: int | None = None  # when prune removed them

    def holds(self, txn: int) -> bool:
        return self.first_txn <= txn <= self.last_txn

    def describe(self) -> str:
        what = (f"transaction {self.first_txn}" if self.first_txn == self.last_txn
                else f"transactions {self.first_txn} to {self.last_txn}")
        if self.kind == PRUNED:
            return f"{what} of chain {self.chain} were removed by prune"
        return (f"the log of {what} of chain {self.chain} is missing (deleted, damaged, or "
                "never made durable)")


@dataclass(frozen=True, slots=True)
class ChainView:
    chain: Chain  # its chain file's record, or one rebuilt from its files (see `problem`)
    problem: str | None  # why the chain file could not be used
    fulls: tuple[FullRef, ...]
    segments: tuple[SegmentRef, ...]
    spans: tuple[Span, ...]
    holes: tuple[Hole, ...]
    last_txn: int  # the last transaction the chain is known to have reached
    removed: bool = False  # prune removed the whole chain

    @property
    def first_txn(self) -> int:
        return self.chain.first_txn

    @property
    def restorable(self) -> bool:
        return bool(self.spans)

    @property
    def incomplete(self) -> bool:
        """Its first full backup never finished: nothing was captured in it."""
        return not self.removed and not self.fulls and not self.segments and not self.holes

    def span_of(self, txn: int) -> Span | None:
        return next((s for s in self.spans if s.holds(txn)), None)

    def hole_of(self, txn: int) -> Hole | None:
        return next((h for h in self.holes if h.holds(txn)), None)


@dataclass(frozen=True, slots=True)
class Catalog:
    db_id: str
    chains: tuple[ChainView, ...]
    points: tuple[RecoveryPoint, ...]
    unreadable_points: tuple[UnreadableFile, ...]
    status: ProtectorStatus | None
    protector_running: bool
    warnings: tuple[str, ...]  # advisory files left out, damaged chain files

    @property
    def restorable_chains(self) -> tuple[ChainView, ...]:
        return tuple(c for c in self.chains if c.restorable)

    @property
    def spans(self) -> tuple[Span, ...]:
        return tuple(s for c in self.chains for s in c.spans)

    def chain_of(self, txn: int) -> ChainView | None:
        """The chain transaction `txn` belongs to (restorable or not)."""
        found = [c for c in self.chains if not c.incomplete and c.first_txn <= txn <= c.last_txn]
        return found[-1] if found else None

    @property
    def newest(self) -> ChainView | None:
        """The newest chain that captured anything."""
        live = [c for c in self.chains if not c.incomplete and not c.removed]
        return live[-1] if live else None

    @property
    def last_txn(self) -> int:
        return max((c.last_txn for c in self.chains if not c.incomplete), default=0)


Listed = tuple[ChainFolder, tuple[FullRef, ...], tuple[SegmentRef, ...]]


@dataclass(frozen=True, slots=True)
class Listing:
    """What a catalog is made of: the advisory files read, and every chain's files by name."""

    db_id: str
    status: ProtectorStatus | None
    status_problem: str | None  # why the status file cannot be read
    points: tuple[RecoveryPoint, ...]
    unreadable_points: tuple[UnreadableFile, ...]
    pruned: tuple[PrunedRange, ...]
    unreadable_pruned: tuple[UnreadableFile, ...]
    chains: tuple[Listed, ...]
    protector_running: bool


def load_catalog(repo: Repository, db_id: str) -> Catalog:
    """What the repository holds of `db_id`."""
    return catalog_of(list_files(repo, db_id))


def list_files(repo: Repository, db_id: str) -> Listing:
    """The files a catalog of `db_id` is made of. The status, points and prune records are read
    before the files are listed: each is written after what it refers to is durable, so what they
    say is already in the listing, unless it was lost."""
    repo.database(db_id)  # a clear error naming the databases there when it is not
    status, status_problem = _status(repo, db_id)
    points, unreadable = repo.points(db_id)
    records, bad_records = repo.pruned(db_id)
    pruned = tuple(r for _path, ranges in records for r in ranges)
    listed = tuple((f, tuple(repo.fulls(db_id, f.number)), tuple(repo.segments(db_id, f.number)))
                   for f in repo.chain_folders(db_id))
    return Listing(db_id, status, status_problem, tuple(points), tuple(unreadable), pruned,
                   tuple(bad_records), listed, repo.protector_running(db_id))


def catalog_of(listing: Listing, unusable: frozenset[FullRef | SegmentRef] = frozenset()
               ) -> Catalog:
    """The catalog of a listing, as if the files in `unusable` (found damaged) were not there."""
    warnings: list[str] = []
    if listing.status_problem:
        warnings.append(f"the protector's status file cannot be read ({listing.status_problem}); "
                        "times after the last captured transaction are not covered without it")
    warnings += [f"recovery point file {u.path} cannot be read ({u.error}); the point's name is "
                 "lost, its transaction is not" for u in listing.unreadable_points]
    warnings += [f"prune record {u.path} cannot be read ({u.error})"
                 for u in listing.unreadable_pruned]
    listed = [(folder, tuple(f for f in fulls if f not in unusable),
               tuple(s for s in segments if s not in unusable))
              for folder, fulls, segments in listing.chains]
    views = build_chains(listed, list(listing.points), listing.unreadable_points,
                         list(listing.pruned), listing.status, warnings)
    return Catalog(listing.db_id, views, listing.points, listing.unreadable_points,
                   listing.status, listing.protector_running, tuple(warnings))


def _status(repo: Repository, db_id: str) -> tuple[ProtectorStatus | None, str | None]:
    try:
        return repo.status(db_id), None
    except (CorruptFile, UnsupportedFormat) as exc:
        return None, exc.message


def build_chains(listed: list[Listed],
                 points: list[RecoveryPoint], unreadable: Iterable[UnreadableFile],
                 pruned: list[PrunedRange], status: ProtectorStatus | None,
                 warnings: list[str]) -> tuple[ChainView, ...]:
    """The chain views of a listing (pure: the unit tests build listings by hand)."""
    records: dict[int, Chain] = {}
    for folder, fulls, segments in listed:
        chain = folder.chain or _rebuilt(folder, fulls, segments)
        if chain is None:
            continue  # an empty folder: a chain that never got its chain file
        if folder.problem:
            warnings.append(f"chain {folder.number}: {folder.problem}; its backups are used "
                            "without it")
        records[folder.number] = chain
    removed = _removed_chains(pruned, set(records))
    numbers = sorted({*records, *removed})
    first_txns = {n: (records[n].first_txn if n in records else removed[n].first_txn)
                  for n in numbers}
    marks = _end_marks(points, unreadable, first_txns)
    views = []
    for index, number in enumerate(numbers):
        later = numbers[index + 1] if index + 1 < len(numbers) else None
        if number in removed:
            views.append(_removed_view(removed[number]))
            continue
        folder, fulls, segments = next(item for item in listed if item[0].number == number)
        chain = records[number]
        next_first = first_txns[later] if later is not None else None
        successor = records.get(later) if later is not None else None
        ending = _Ending(next_first, successor.previous if successor else None,
                         status if later is None else None)
        views.append(_view(chain, folder.problem, fulls, segments, marks.get(number, []),
                           [r for r in pruned if r.chain == number], ending))
    return tuple(views)


@dataclass(frozen=True, slots=True)
class _Ending:
    """What the world after a chain says of its end."""

    next_first_txn: int | None  # the next chain's first transaction
    previous_record: ChainEnd | None  # what the next chain recorded of this one
    status: ProtectorStatus | None  # for the newest chain only


def _view(chain: Chain, problem: str | None, fulls: tuple[FullRef, ...],
          segments: tuple[SegmentRef, ...], marks: list[int], pruned: list[PrunedRange],
          ending: _Ending) -> ChainView:
    status = ending.status if ending.status and ending.status.chain == chain.chain else None
    own = [*(f.txn for f in fulls), *(s.last_txn for s in segments), *marks,
           *(r.last_txn for r in pruned)]
    if status is not None and status.durable_txn is not None:
        own.append(status.durable_txn)  # (before format 3, the status did not say)
    if not own:  # its first full backup never finished: nothing was captured in it
        return ChainView(chain, problem, fulls, segments, (), (), chain.first_txn)
    if ending.next_first_txn is not None:
        own.append(ending.next_first_txn - 1)
    last_txn = max(chain.first_txn, *own)
    times = _Times(chain, fulls, segments)
    spans = _with_end_times(_spans(chain, fulls, segments, times), last_txn, times, ending,
                            status)
    holes = _holes(chain, spans, last_txn, pruned, times)
    return ChainView(chain, problem, fulls, segments, spans, holes, last_txn)


class _Times:
    """The time of a transaction, where file names give it exactly."""

    def __init__(self, chain: Chain, fulls: tuple[FullRef, ...],
                 segments: tuple[SegmentRef, ...]) -> None:
        self.exact: dict[int, int] = {}
        for segment in segments:
            self.exact[segment.first_txn] = segment.first_time
            self.exact[segment.last_txn] = segment.last_time
        self.chain = chain
        self.taken = {f.txn: f.taken_at for f in fulls}

    def of(self, txn: int) -> int | None:
        return self.exact.get(txn)

    def full_start(self, txn: int) -> int:
        """From when the state after full backup `txn` is provably current: the chain's start
        for its first full backup (its image was read then), else its transaction's time, or,
        when no name gives that, the time the full backup was taken (never earlier)."""
        if txn == self.chain.first_txn and self.chain.started_at:
            return self.chain.started_at
        exact = self.of(txn)
        return exact if exact is not None else self.taken[txn]


def _spans(chain: Chain, fulls: tuple[FullRef, ...], segments: tuple[SegmentRef, ...],
           times: _Times) -> list[Span]:
    spans: list[Span] = []
    for full in fulls:
        if spans and full.txn <= spans[-1].last_txn:
            spans[-1] = _add_full(spans[-1], full, times.full_start(full.txn))
            continue
        log: list[SegmentRef] = []
        reached = full.txn
        for segment in segments:
            if segment.last_txn <= reached:
                continue
            if segment.first_txn > reached + 1:
                break
            log.append(segment)
            reached = segment.last_txn
        start = times.full_start(full.txn)
        spans.append(Span(chain.chain, full.txn, reached, (full,), (start,), tuple(log), start,
                          start))
    return spans


def _add_full(span: Span, full: FullRef, start: int) -> Span:
    return Span(span.chain, span.first_txn, span.last_txn, (*span.fulls, full),
                (*span.full_times, start), span.segments, span.start_time, span.end_time)


def _with_end_times(spans: list[Span], last_txn: int, times: _Times, ending: _Ending,
                    status: ProtectorStatus | None) -> tuple[Span, ...]:
    ended = []
    for span in spans:
        end = _end_time(span, last_txn, times, ending, status)
        ended.append(Span(span.chain, span.first_txn, span.last_txn, span.fulls, span.full_times,
                          span.segments, span.start_time, max(end, span.start_time)))
    return tuple(ended)


def _end_time(span: Span, last_txn: int, times: _Times, ending: _Ending,
              status: ProtectorStatus | None) -> int:
    """Until when (exclusive) a time names a state of `span`. Before a hole, and at the end of a
    closed chain no later record speaks of, only up to its last transaction's time: what came next
    is not there. At the end of a closed chain, up to what its protector last proved (recorded in
    the next chain); at the end of the newest chain, up to what the protector's status proves: in
    both cases, COMMIT_MARGIN_MS before the protector's last look at the WAL, because a
    transaction stamps its commit time before its frames reach the WAL."""
    last_time = times.of(span.last_txn)
    if last_time is None:
        last_time = times.full_start(span.last_txn) if span.last_txn in times.taken else \
            span.start_time
    if span.last_txn < last_txn:
        return last_time
    proven = 0
    if ending.next_first_txn is not None:
        record = ending.previous_record
        if record is not None and (record.chain, record.last_txn) == (span.chain, span.last_txn):
            proven = record.covered_until
    elif status is not None and _durable(status) <= span.last_txn:
        proven = status.synced_through
    return max(proven - COMMIT_MARGIN_MS, last_time)


def _durable(status: ProtectorStatus) -> int:
    """The last durable transaction the status reports (before format 3, its last captured one,
    which is at least that)."""
    return status.last_txn if status.durable_txn is None else status.durable_txn


def _holes(chain: Chain, spans: tuple[Span, ...], last_txn: int, pruned: list[PrunedRange],
           times: _Times) -> tuple[Hole, ...]:
    gaps: list[tuple[int, int, int | None, int | None]] = []
    reached, after = chain.first_txn - 1, chain.started_at or None
    for span in spans:
        if span.first_txn > reached + 1:
            gaps.append((reached + 1, span.first_txn - 1, after, span.start_time))
        reached, after = span.last_txn, times.of(span.last_txn) or span.end_time
    if last_txn > reached:
        gaps.append((reached + 1, last_txn, after, None))
    holes: list[Hole] = []
    for first, last, after_time, before_time in gaps:
        holes += _split_by_prune(chain.chain, first, last, after_time, before_time, pruned)
    return tuple(holes)


def _split_by_prune(chain: int, first: int, last: int, after_time: int | None,
                    before_time: int | None, pruned: list[PrunedRange]) -> list[Hole]:
    """The hole first..last in runs removed by prune and runs missing for another reason, each
    between the times around the whole hole (what the repository proves on either side)."""
    runs: list[Hole] = []
    txn = first
    while txn <= last:
        cover = next((r for r in pruned if r.first_txn <= txn <= r.last_txn), None)
        if cover is not None:
            end = min(cover.last_txn, last)
            runs.append(Hole(chain, txn, end, PRUNED, after_time, before_time, cover.pruned_at))
        else:
            starts = [r.first_txn for r in pruned if txn < r.first_txn <= last]
            end = min(starts) - 1 if starts else last
            runs.append(Hole(chain, txn, end, MISSING, after_time, before_time))
        txn = end + 1
    return runs


def _rebuilt(folder: ChainFolder, fulls: tuple[FullRef, ...],
             segments: tuple[SegmentRef, ...]) -> Chain | None:
    """A chain record from the chain's own files, when its chain file is gone or damaged: it
    starts at its first full backup (or first segment) as far as anything can tell."""
    if not fulls and not segments:
        return None
    first_full = fulls[0] if fulls else None
    first_txn = min([*(f.txn for f in fulls), *(s.first_txn - 1 for s in segments)])
    started = first_full.taken_at if first_full and first_full.txn == first_txn else 0
    return Chain(folder.number, started, first_txn, f"unknown: {folder.problem}")


def _removed_chains(pruned: list[PrunedRange], present: set[int]) -> dict[int, PrunedRange]:
    """Chains prune removed whole: named by prune records, their folders gone."""
    whole: dict[int, PrunedRange] = {}
    for record in pruned:
        if record.chain in present:
            continue
        if record.chain in whole:
            seen = whole[record.chain]
            record = PrunedRange(record.chain, min(seen.first_txn, record.first_txn),
                                 max(seen.last_txn, record.last_txn),
                                 min(seen.first_time, record.first_time),
                                 max(seen.last_time, record.last_time),
                                 max(seen.pruned_at, record.pruned_at))
        whole[record.chain] = record
    return whole


def _removed_view(record: PrunedRange) -> ChainView:
    chain = Chain(record.chain, record.first_time, record.first_txn, "removed by prune")
    hole = Hole(record.chain, record.first_txn, record.last_txn, PRUNED, record.first_time,
                record.last_time, record.pruned_at)
    return ChainView(chain, None, (), (), (), (hole,), record.last_txn, removed=True)


def _end_marks(points: list[RecoveryPoint], unreadable: Iterable[UnreadableFile],
               first_txns: dict[int, int]) -> dict[int, list[int]]:
    """Transactions each chain is known to have reached, from its recovery points (a damaged
    point file by the transaction in its name, placed by the chains' first transactions)."""
    marks: dict[int, list[int]] = {}
    for point in points:
        marks.setdefault(point.chain, []).append(point.txn)
    for file in unreadable:
        if file.txn is None:
            continue
        owners = [n for n, first in first_txns.items() if first <= file.txn]
        if owners:
            marks.setdefault(max(owners), []).append(file.txn)
    return marks
