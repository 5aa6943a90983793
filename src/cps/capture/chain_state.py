"""Where a database's capture stands in the repository: the last chain, transaction and position.

Read at start-up to resume. The last segment of the last chain (or, before any segment, its latest
full backup) holds the WAL position capture reached; transaction numbers continue from the last
one recorded.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import RepositoryError
from ..repository import Chain, FullRef, Repository, WalPosition


@dataclass(frozen=True, slots=True)
class ChainState:
    chain: Chain | None  # None: the database has never been protected into this repository
    last_txn: int
    position: WalPosition | None
    last_full: FullRef | None
    problem: str | None = None  # why the last chain cannot be continued, when it cannot


def load_chain_state(repo: Repository, db_id: str) -> ChainState:
    chains = repo.chains(db_id)
    if not chains:
        return ChainState(None, 0, None, None)
    chain = chains[-1]
    fulls = repo.fulls(db_id, chain.chain)
    segments = repo.segments(db_id, chain.chain)
    last_txn = max([chain.first_txn - 1] + [f.txn for f in fulls] + [s.last_txn for s in segments])
    if not fulls:
        return ChainState(chain, last_txn, None, None, "the chain's first full backup never finished")
    last_full = fulls[-1]
    try:
        # Read even when a segment follows it: later full backups are made from it.
        position = repo.read_full(db_id, last_full).position
        if segments and segments[-1].last_txn > last_full.txn:
            position = repo.read_segment(db_id, segments[-1]).end
        position = _stopped_at(repo, db_id, chain, last_txn) or position
    except RepositoryError as exc:
        return ChainState(chain, last_txn, None, None, f"its last file cannot be read ({exc})")
    return ChainState(chain, last_txn, position, last_full)


def _stopped_at(repo: Repository, db_id: str, chain: Chain, last_txn: int) -> WalPosition | None:
    """Where a clean stop left capture, when it is later than the last segment: a WAL reset with
    no transaction after it moves the position without writing a segment."""
    status = repo.status(db_id)
    if not status or status.get("state") != "stopped" or "position" not in status:
        return None
    if status.get("chain") != chain.chain or status.get("last_txn") != last_txn:
        return None
    fields = status["position"]
    return WalPosition(fields["checkpoint_seq"], fields["salt1"], fields["salt2"],
                       fields["frame"], (fields["checksum"][0], fields["checksum"][1]))
