"""The catalog: what one database's backups cover, read from the repository's file names.

It is derived entirely from the names of chain, full backup and segment files (which carry their
transaction ranges and times) and from recovery point files, so it needs no index of its own and
cannot disagree with the files. Planning and the timeline work on it without reading any page.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..repository import Chain, FullRef, RecoveryPoint, Repository, SegmentRef


@dataclass(frozen=True, slots=True)
class ChainView:
    chain: Chain
    fulls: tuple[FullRef, ...]
    segments: tuple[SegmentRef, ...]

    @property
    def first_txn(self) -> int:
        """The earliest restorable transaction: the chain's first full backup."""
        return self.fulls[0].txn if self.fulls else self.chain.first_txn

    @property
    def last_txn(self) -> int:
        """The last transaction reachable from the first full without a missing segment."""
        return self.contiguous_end(self.first_txn)

    @property
    def restorable(self) -> bool:
        return bool(self.fulls)

    def contiguous_end(self, after_txn: int) -> int:
        reached = after_txn
        for segment in self.segments:
            if segment.last_txn <= reached:
                continue
            if segment.first_txn > reached + 1:
                break
            reached = segment.last_txn
        return reached

    def missing_after(self) -> int | None:
        """The first transaction after which a segment is missing, or None."""
        end = self.last_txn
        later = [s for s in self.segments if s.first_txn > end + 1]
        return end if later else None

    def time_of(self, txn: int) -> int | None:
        """When transaction `txn` was first seen, when a file name says so exactly."""
        if txn == self.chain.first_txn:
            return self.chain.started_at
        for segment in self.segments:
            if segment.first_txn == txn:
                return segment.first_seen
            if segment.last_txn == txn:
                return segment.last_seen
        for full in self.fulls:
            if full.txn == txn:
                return full.taken_at
        return None

    @property
    def last_seen(self) -> int:
        reachable = [s.last_seen for s in self.segments if s.last_txn <= self.last_txn]
        return max([self.chain.started_at, *reachable])


@dataclass(frozen=True, slots=True)
class Catalog:
    db_id: str
    chains: tuple[ChainView, ...]
    points: tuple[RecoveryPoint, ...]

    @property
    def restorable_chains(self) -> tuple[ChainView, ...]:
        return tuple(c for c in self.chains if c.restorable)

    def chain_of(self, txn: int) -> ChainView | None:
        for view in self.restorable_chains:
            if view.first_txn <= txn <= view.last_txn:
                return view
        return None


def load_catalog(repo: Repository, db_id: str) -> Catalog:
    repo.database(db_id)  # a clear error naming the databases there when it is not
    views = []
    for chain in repo.chains(db_id):
        views.append(ChainView(chain, tuple(repo.fulls(db_id, chain.chain)),
                               tuple(repo.segments(db_id, chain.chain))))
    return Catalog(db_id, tuple(views), tuple(repo.points(db_id)))
