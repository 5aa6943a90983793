"""Retention: which restore points to keep, and removing everything no kept point needs.

Kept: every point in time within `keep_within` (point-in-time restore stays possible there), the
last full backup or recovery point of each of the last `keep_daily` days and `keep_weekly` weeks
that have one, and always the latest full backup of the newest chain with everything after it. A
kept point needs the latest full backup at or before it in its chain and the segments from there
to it; every other full, segment, recovery point and empty chain is deleted, then every pack no
remaining full backup uses.

Crash safety: only files that no kept point needs are deleted, so the repository restores every
kept point at every instant of a prune; a prune cut short leaves unreferenced files that the next
one removes. Packs are deleted under the exclusive packs lock, with the list of full backups read
under that lock, so no full backup being written can lose a pack it is about to refer to.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from ..errors import CorruptFile
from .model import Chain, FullRef, RecoveryPoint, SegmentRef
from .naming import chain_dir, database_dir, format_point
from .packs import pack_files, read_pack_index
from .repository import Repository


@dataclass(frozen=True, slots=True)
class Retention:
    keep_within: float  # seconds
    keep_daily: int = 0
    keep_weekly: int = 0


@dataclass
class PruneReport:
    kept_points: list[tuple[int, int]] = field(default_factory=list)  # (chain, txn)
    deleted_files: list[str] = field(default_factory=list)
    deleted_bytes: int = 0


@dataclass(frozen=True, slots=True)
class _Candidate:
    chain: int
    txn: int
    time: int


def prune(repo: Repository, retention: Retention, *, dry_run: bool = False,
          now: float | None = None) -> PruneReport:
    report = PruneReport()
    current = time.time() if now is None else now
    for info in repo.databases():
        _prune_database(repo, info.db_id, retention, current, dry_run, report)
    with repo.prune_lock():
        _delete_unused_packs(repo, dry_run, report)
    return report


def _prune_database(repo: Repository, db_id: str, retention: Retention, now: float,
                    dry_run: bool, report: PruneReport) -> None:
    chains = repo.chains(db_id)
    fulls = {c.chain: repo.fulls(db_id, c.chain) for c in chains}
    segments = {c.chain: repo.segments(db_id, c.chain) for c in chains}
    points = repo.points(db_id)
    keep = _kept_targets(chains, fulls, segments, points, retention, now)
    report.kept_points.extend(sorted((c, t) for c, t in keep))
    needed_fulls: set[tuple[int, int]] = set()
    needed_segments: set[SegmentRef] = set()
    for number, txn in keep:
        base = max((f for f in fulls[number] if f.txn <= txn), key=lambda f: f.txn, default=None)
        if base is None:
            continue
        needed_fulls.add((number, base.txn))
        needed_segments.update(s for s in segments[number]
                               if s.last_txn > base.txn and s.first_txn <= txn)
    doomed: list[Path] = []
    for point in points:
        if (point.chain, point.txn) not in keep:
            doomed.append(database_dir(repo.root, db_id) / "points" / format_point(point.txn, point.name))
    for chain in chains:
        doomed += [repo.segment_path(db_id, s) for s in segments[chain.chain] if s not in needed_segments]
        doomed += [repo.full_path(db_id, f) for f in fulls[chain.chain]
                   if (chain.chain, f.txn) not in needed_fulls]
    _delete(doomed, dry_run, report)
    for chain in chains:
        if not any(c == chain.chain for c, _t in needed_fulls):
            folder = chain_dir(repo.root, db_id, chain.chain)
            _delete([folder / "chain"], dry_run, report)
            if not dry_run:
                for sub in ("fulls", "segments"):
                    _remove_empty(folder / sub)
                _remove_empty(folder)


def _kept_targets(chains: list[Chain], fulls: dict[int, list[FullRef]],
                  segments: dict[int, list[SegmentRef]], points: list[RecoveryPoint],
                  retention: Retention, now: float) -> set[tuple[int, int]]:
    window_start = int((now - retention.keep_within) * 1000)
    keep: set[tuple[int, int]] = set()
    candidates = [_Candidate(f.chain, f.txn, f.taken_at) for c in chains for f in fulls[c.chain]]
    candidates += [_Candidate(p.chain, p.txn, p.created_at) for p in points]
    for chain in chains:
        chain_segments = segments[chain.chain]
        # Every transaction inside the window: keep the window's first state and its last.
        inside = [s for s in chain_segments if s.last_seen >= window_start]
        if inside:
            start = min(s.first_txn for s in inside) - 1
            keep.add((chain.chain, max(start, fulls[chain.chain][0].txn if fulls[chain.chain] else 0)))
            keep.update((chain.chain, t) for s in inside for t in (s.first_txn, s.last_txn))
    keep.update((c.chain, c.txn) for c in candidates if c.time >= window_start)
    keep |= _per_period(candidates, retention.keep_daily, "%Y-%m-%d")
    keep |= _per_period(candidates, retention.keep_weekly, "%G-W%V")
    if chains and fulls[chains[-1].chain]:
        newest = chains[-1].chain
        latest_full = fulls[newest][-1].txn
        keep.add((newest, latest_full))
        keep.update((newest, s.last_txn) for s in segments[newest] if s.last_txn > latest_full)
    return {(c, t) for c, t in keep if fulls.get(c)}


def _per_period(candidates: list[_Candidate], count: int, pattern: str) -> set[tuple[int, int]]:
    if count <= 0:
        return set()
    latest: dict[str, _Candidate] = {}
    for candidate in candidates:
        period = datetime.fromtimestamp(candidate.time / 1000, UTC).strftime(pattern)
        if period not in latest or candidate.time > latest[period].time:
            latest[period] = candidate
    chosen = sorted(latest.items(), reverse=True)[:count]
    return {(c.chain, c.txn) for _period, c in chosen}


def _delete_unused_packs(repo: Repository, dry_run: bool, report: PruneReport) -> None:
    used: set[bytes] = set()
    for info in repo.databases():
        for chain in repo.chains(info.db_id):
            for ref in repo.fulls(info.db_id, chain.chain):
                used.update(repo.read_full(info.db_id, ref).ids())
    for path in list(pack_files(repo.root)):
        try:
            entries = read_pack_index(path, repo.sealing_for)
        except CorruptFile:
            continue  # kept: a damaged pack is for the operator to look at, not for prune
        if not any(page_id in used for page_id, _offset, _length in entries):
            _delete([path], dry_run, report)


def _delete(paths: list[Path], dry_run: bool, report: PruneReport) -> None:
    for path in paths:
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            continue
        report.deleted_files.append(str(path))
        report.deleted_bytes += size
        if not dry_run:
            path.unlink()


def _remove_empty(folder: Path) -> None:
    with contextlib.suppress(OSError):
        folder.rmdir()
