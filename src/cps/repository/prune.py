"""Retention: which restore points to keep, and removing everything no kept point needs.

Kept: every point in time within `keep_within` (point-in-time restore stays possible there), the
last full backup or recovery point of each of the last `keep_daily` days and `keep_weekly` weeks
that have one, every recovery point marked `keep`, and always the latest full backup of the newest
chain with everything after it. A kept point needs the latest full backup at or before it in its
span (catalog.py) and the segments from there to it; every other full backup, segment, recovery
point and chain file is deleted, then every pack no remaining full backup uses. A recovery point
whose file cannot be read is neither deleted nor allowed to lose what it needs: its name, and so
whether it was to be kept, is unknown.

Before deleting anything, prune writes a prune record (`databases/<db>/pruned/`) naming the
transactions whose files it deletes, merged with the earlier records, which it deletes after: the
catalog then tells what prune removed from what is missing, at every instant.

Drill records (`cps drill`) are kept for the newest KEEP_DRILLS drills of each database and the
newest drill that passed, whenever it was; older ones are deleted.

Crash safety: only files that no kept point needs are deleted, so the repository restores every
kept point at every instant of a prune; a prune cut short leaves unreferenced files that the next
one removes. Packs are deleted under the exclusive packs lock, with the list of full backups read
under that lock, so no full backup being written can lose a pack it is about to refer to.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from ..errors import CorruptFile, FileRetained, MissingFile
from .catalog import Catalog, ChainView, Span, load_catalog
from .model import FullRef, PrunedRange, SegmentRef
from .naming import chain_dir
from .packs import pack_files, read_pack_index
from .repository import Repository
from .storage import Storage

Progress = Callable[[str, int, int], None]
Target = tuple[int, int]  # (chain, txn)
KEEP_DRILLS = 10


@dataclass(frozen=True, slots=True)
class Retention:
    keep_within: float  # seconds
    keep_daily: int = 0
    keep_weekly: int = 0


@dataclass
class PruneReport:
    """What a prune kept and deleted, counted as a person counts them."""

    kept_fulls: int = 0
    kept_points: int = 0
    kept_since: int | None = None  # every point in time since this one (ms) stays restorable
    deleted_fulls: int = 0
    deleted_segments: int = 0
    deleted_points: int = 0
    deleted_chains: int = 0
    deleted_packs: int = 0
    deleted_drills: int = 0
    deleted_files: list[str] = field(default_factory=list)
    deleted_bytes: int = 0
    unreadable_points: list[str] = field(default_factory=list)  # kept, for a person to look at
    retained_files: list[str] = field(default_factory=list)  # kept: Object Lock refused the delete
    packs_left: str | None = None  # why unused packs were not looked for


@dataclass(frozen=True, slots=True)
class _Candidate:
    chain: int
    txn: int
    time: int


def prune(repo: Repository, retention: Retention, *, dry_run: bool = False,
          db_id: str | None = None, now: float | None = None,
          progress: Progress | None = None) -> PruneReport:
    """Apply `retention` to every database of `repo`, or to `db_id` alone (databases sharing a
    repository may have policies of their own), then delete the packs nothing uses."""
    report = PruneReport()
    current = time.time() if now is None else now
    report.kept_since = int((current - retention.keep_within) * 1000)
    for info in repo.databases():
        if db_id is not None and info.db_id != db_id:
            continue
        _prune_database(repo, load_catalog(repo, info.db_id), retention, current, dry_run, report)
    with repo.prune_lock():
        _delete_unused_packs(repo, dry_run, report, progress or _quiet)
    return report


def _prune_database(repo: Repository, catalog: Catalog, retention: Retention, now: float,
                    dry_run: bool, report: PruneReport) -> None:
    db_id = catalog.db_id
    keep = _kept_targets(catalog, retention, now)
    needed_fulls, needed_segments = _needed(catalog, keep)
    live = [c for c in catalog.chains if not c.removed]
    doomed_points = [p for p in catalog.points if (p.chain, p.txn) not in keep]
    doomed_segments = [s for c in live for s in c.segments if s not in needed_segments]
    doomed_fulls = [f for c in live for f in c.fulls if f not in needed_fulls]
    newest = max((c.chain.chain for c in live), default=None)
    doomed_chains = [c for c in live if not c.incomplete and c.chain.chain != newest
                     and not any(f.chain == c.chain.chain for f in needed_fulls)]
    report.kept_fulls += len(needed_fulls)
    report.kept_points += len(catalog.points) - len(doomed_points)
    report.unreadable_points += [u.path for u in catalog.unreadable_points]
    report.deleted_drills += _delete(repo.storage, _old_drills(repo, db_id), dry_run, report)
    if not (doomed_segments or doomed_fulls or doomed_chains or doomed_points):
        return
    removed = _removed_ranges(catalog, doomed_segments, doomed_fulls, doomed_chains)
    old_records, _unreadable = repo.pruned(db_id)
    if not dry_run and removed:
        merged = _merged([*removed, *(r for _path, ranges in old_records for r in ranges)])
        repo.write_pruned(db_id, merged)  # before anything it names is deleted
    storage = repo.storage
    report.deleted_points += _delete(storage, [repo.point_key(db_id, p) for p in doomed_points],
                                     dry_run, report)
    report.deleted_segments += _delete(
        storage, [repo.segment_key(db_id, s) for s in doomed_segments], dry_run, report)
    report.deleted_fulls += _delete(storage, [repo.full_key(db_id, f) for f in doomed_fulls],
                                    dry_run, report)
    # A chain's folder goes with its last file (Storage.delete).
    report.deleted_chains += _delete(
        storage, [f"{chain_dir(db_id, view.chain.chain)}/chain" for view in doomed_chains],
        dry_run, report)
    if not dry_run and removed:
        for key, _ranges in old_records:  # merged into the new record
            storage.delete(key)


def _old_drills(repo: Repository, db_id: str) -> list[str]:
    """The drill records past the newest KEEP_DRILLS, but for the newest one that passed."""
    records, _unreadable = repo.drills(db_id)  # a damaged one is kept, for a person to look at
    passed = [key for key, record in records if record.passed]
    kept = {key for key, _record in records[-KEEP_DRILLS:]} | set(passed[-1:])
    return [key for key, _record in records if key not in kept]


def _kept_targets(catalog: Catalog, retention: Retention, now: float) -> set[Target]:
    window_start = int((now - retention.keep_within) * 1000)
    keep: set[Target] = set()
    for span in catalog.spans:
        keep |= _window_targets(span, window_start)
    candidates = [_Candidate(s.chain, f.txn, t) for s in catalog.spans
                  for f, t in zip(s.fulls, s.full_times, strict=True)]
    candidates += [_Candidate(p.chain, p.txn, p.created_at) for p in catalog.points]
    keep.update((c.chain, c.txn) for c in candidates if c.time >= window_start)
    keep |= _per_period(candidates, retention.keep_daily, "%Y-%m-%d")
    keep |= _per_period(candidates, retention.keep_weekly, "%G-W%V")
    keep.update((p.chain, p.txn) for p in catalog.points if p.keep)
    for unreadable in catalog.unreadable_points:
        chain = catalog.chain_of(unreadable.txn) if unreadable.txn is not None else None
        if chain is not None and unreadable.txn is not None:
            keep.add((chain.chain.chain, unreadable.txn))
    newest = [s for s in catalog.spans if s.chain == _newest_chain(catalog)]
    if newest:
        latest = newest[-1]
        keep.add((latest.chain, latest.fulls[-1].txn))
        keep.add((latest.chain, latest.last_txn))
    return keep


def _newest_chain(catalog: Catalog) -> int | None:
    restorable = catalog.restorable_chains
    return restorable[-1].chain.chain if restorable else None


def _window_targets(span: Span, window_start: int) -> set[Target]:
    """Every state of the span inside the window: its first one there and its last (what lies
    between needs the same files)."""
    if span.end_time <= window_start:
        return set()
    inside = [s for s in span.segments if s.last_time >= window_start]
    first = min([s.first_txn - 1 for s in inside], default=span.last_txn)
    return {(span.chain, max(first, span.first_txn)), (span.chain, span.last_txn)}


def _per_period(candidates: list[_Candidate], count: int, pattern: str) -> set[Target]:
    if count <= 0:
        return set()
    latest: dict[str, _Candidate] = {}
    for candidate in candidates:
        period = datetime.fromtimestamp(candidate.time / 1000, UTC).strftime(pattern)
        if period not in latest or candidate.time > latest[period].time:
            latest[period] = candidate
    chosen = sorted(latest.items(), reverse=True)[:count]
    return {(c.chain, c.txn) for _period, c in chosen}


def _needed(catalog: Catalog, keep: set[Target]) -> tuple[set[FullRef], set[SegmentRef]]:
    """The full backups and segments that restore the kept targets: for each, the latest full
    backup at or before it in its span, and the log from there to it."""
    fulls: set[FullRef] = set()
    segments: set[SegmentRef] = set()
    for chain_number, txn in keep:
        span = next((s for s in catalog.spans if s.chain == chain_number and s.holds(txn)), None)
        if span is None:
            continue  # not restorable (in a hole): nothing of it to keep
        base = max((f for f in span.fulls if f.txn <= txn), key=lambda f: f.txn)
        fulls.add(base)
        segments.update(s for s in span.segments if s.last_txn > base.txn and s.first_txn <= txn)
    return fulls, segments


def _removed_ranges(catalog: Catalog, segments: Iterable[SegmentRef], fulls: Iterable[FullRef],
                    chains: Iterable[ChainView]) -> list[PrunedRange]:
    at = int(time.time() * 1000)
    ranges = [PrunedRange(s.chain, s.first_txn, s.last_txn, s.first_time, s.last_time, at)
              for s in segments]
    ranges += [PrunedRange(f.chain, f.txn, f.txn, f.taken_at, f.taken_at, at) for f in fulls]
    for view in chains:
        start = view.chain.started_at or min((f.taken_at for f in view.fulls), default=at)
        end = max([start, *(s.end_time for s in view.spans)])
        ranges.append(PrunedRange(view.chain.chain, view.first_txn, view.last_txn, start, end, at))
    return _merged(ranges)


def _merged(ranges: list[PrunedRange]) -> list[PrunedRange]:
    """Overlapping or adjacent ranges of a chain as one."""
    merged: list[PrunedRange] = []
    for item in sorted(ranges, key=lambda r: (r.chain, r.first_txn)):
        last = merged[-1] if merged else None
        if last is not None and last.chain == item.chain and item.first_txn <= last.last_txn + 1:
            merged[-1] = PrunedRange(last.chain, last.first_txn, max(last.last_txn, item.last_txn),
                                     min(last.first_time, item.first_time),
                                     max(last.last_time, item.last_time),
                                     max(last.pruned_at, item.pruned_at))
        else:
            merged.append(item)
    return merged


def _delete_unused_packs(repo: Repository, dry_run: bool, report: PruneReport,
                         progress: Progress) -> None:
    used: set[bytes] = set()
    for info in repo.databases():
        for folder in repo.chain_folders(info.db_id):  # chain file or not: its fulls count
            for ref in repo.fulls(info.db_id, folder.number):
                try:
                    used.update(repo.read_full(info.db_id, ref).ids())
                except (CorruptFile, MissingFile) as exc:
                    # Which pages it lists is unknown: no pack can be shown to be unused.
                    report.packs_left = f"{exc.message}; no pack was deleted"
                    return
    packs = pack_files(repo.storage)
    for done, pack in enumerate(packs, 1):
        progress("packs", done, len(packs))
        try:
            entries = read_pack_index(repo.storage, pack, repo.sealing_for)
        except (CorruptFile, MissingFile):
            continue  # kept: a damaged pack is for the operator to look at, not for prune
        if not any(page_id in used for page_id, _offset, _length in entries):
            report.deleted_packs += _delete(repo.storage, [pack.key], dry_run, report)


def _delete(storage: Storage, keys: list[str], dry_run: bool, report: PruneReport) -> int:
    """Delete what exists of `keys`; how many there were."""
    count = 0
    for key in keys:
        size = storage.size(key)
        if size is None:
            continue
        if not dry_run:
            try:
                storage.delete(key)
            except FileRetained:
                report.retained_files.append(storage.describe(key))
                continue
        report.deleted_files.append(storage.describe(key))
        report.deleted_bytes += size
        count += 1
    return count


def _quiet(_stage: str, _done: int, _total: int) -> None:
    return None
