"""Where a database's capture stands in the repository: the chain to continue, its position, and
the numbers a new chain takes.

Read at start-up from the catalog (`cps.repository.catalog`). The last chain is continued when its
files allow: its chain file is there, its first full backup finished, and no log is missing at its
end. Its last segment (or, before any segment, its latest full backup) holds the WAL position
capture reached, or a clean stop's status when that is later. Transaction numbers continue from
the highest the repository knows of, chain numbers from the highest folder or prune record, so
neither is ever used twice, whatever became of a chain's files.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import RepositoryError
from ..repository import (
    Chain,
    ChainEnd,
    FullRef,
    ProtectorStatus,
    Repository,
    SegmentRef,
    WalPosition,
)
from ..repository.catalog import Catalog, ChainView, load_catalog


@dataclass(frozen=True, slots=True)
class ChainState:
    chain: Chain | None  # the chain to continue, when it can be
    last_txn: int  # the highest transaction number the repository knows of
    next_chain: int  # the number a new chain takes
    position: WalPosition | None
    last_full: FullRef | None
    problem: str | None = None  # why the last chain cannot be continued (None: nothing to continue)
    ending: ChainEnd | None = None  # what is proven of the last chain's end, for the next chain
    log_since_full: tuple[SegmentRef, ...] = ()  # the last chain's log after its last full backup
    source_path: str = ""  # where the last chain was captured from, as far as is known
    status: ProtectorStatus | None = None


def load_chain_state(repo: Repository, db_id: str) -> ChainState:
    catalog = load_catalog(repo, db_id)
    numbers = [f.number for f in repo.chain_folders(db_id)] + [c.chain.chain for c in catalog.chains]
    next_chain = max(numbers, default=0) + 1
    last_txn = max([catalog.last_txn, *(c.first_txn for c in catalog.chains if c.incomplete)],
                   default=0)
    source = _source_path(repo, db_id, catalog)
    live = [c for c in catalog.chains if not c.removed]
    folders = repo.chain_folders(db_id)
    if not folders:
        return ChainState(None, last_txn, next_chain, None, None, source_path=source,
                          status=catalog.status)
    newest = folders[-1]
    view = next((c for c in live if c.chain.chain == newest.number), None)
    base = ChainState(None, last_txn, next_chain, None, None, None, _ending(catalog, view),
                      (), source, catalog.status)
    problem = _why_not_continued(newest.problem, view)
    if problem is not None:
        return _with(base, problem=problem)
    assert view is not None and newest.chain is not None
    return _continued(repo, db_id, base, newest.chain, view, catalog.status)


def _why_not_continued(folder_problem: str | None, view: ChainView | None) -> str | None:
    if folder_problem is not None:
        return f"the last chain cannot be continued: {folder_problem}"
    if view is None or not view.fulls:
        return "the chain's first full backup never finished"
    if view.holes and view.holes[-1].last_txn == view.last_txn:
        return f"the last chain cannot be continued: {view.holes[-1].describe()}"
    return None


def _continued(repo: Repository, db_id: str, base: ChainState, chain: Chain, view: ChainView,
               status: ProtectorStatus | None) -> ChainState:
    last_full = view.fulls[-1]
    log = tuple(s for s in view.segments if s.last_txn > last_full.txn)
    try:
        # Read even when a segment follows it: later full backups are made from it.
        position = repo.read_full(db_id, last_full).position
        if log:
            position = repo.read_segment(db_id, log[-1]).end
    except RepositoryError as exc:
        return _with(base, problem=f"its last file cannot be read ({exc})")
    stopped = _stopped_at(status, chain, view.last_txn)
    return ChainState(chain, base.last_txn, base.next_chain, stopped or position, last_full, None,
                      base.ending, log, base.source_path, status)


def _with(state: ChainState, *, problem: str) -> ChainState:
    return ChainState(None, state.last_txn, state.next_chain, None, None, problem, state.ending,
                      (), state.source_path, state.status)


def _ending(catalog: Catalog, view: ChainView | None) -> ChainEnd | None:
    """What the status proved of the last chain's end: a new chain records it."""
    status = catalog.status
    if view is None or not view.spans or status is None or status.chain != view.chain.chain:
        return None
    span = view.spans[-1]
    durable = status.last_txn if status.durable_txn is None else status.durable_txn
    if span.last_txn != view.last_txn or durable > span.last_txn:
        return None
    return ChainEnd(view.chain.chain, span.last_txn, max(status.synced_through, 0))


def _source_path(repo: Repository, db_id: str, catalog: Catalog) -> str:
    """Where the database was last protected from: the status says it, else the last chain
    that recorded it, else the database's record."""
    if catalog.status is not None and catalog.status.source_path:
        return catalog.status.source_path
    recorded = [c.chain.source_path for c in catalog.chains if c.chain.source_path]
    if recorded:
        return recorded[-1]
    return repo.database(db_id).source_path


def _stopped_at(status: ProtectorStatus | None, chain: Chain, last_txn: int
                ) -> WalPosition | None:
    """Where a clean stop left capture, when it is later than the last segment: a WAL reset with
    no transaction after it moves the position without writing a segment."""
    if status is None or status.state != "stopped" or status.position is None:
        return None
    durable = status.last_txn if status.durable_txn is None else status.durable_txn
    if status.chain != chain.chain or durable != last_txn or status.last_txn != last_txn:
        return None
    return status.position
