"""Reading a plan's log: the transactions it applies after its full backup, in order, up to its end.

Restore and granular recovery both apply exactly these transactions (`read_log`), so a point
browsed in place is, by construction, the database a restore of the same plan writes. A segment
that cannot be read ends the log with `LogUnreadable`, which names the transactions and times it
holds: everything before it has been yielded, so a caller can keep the point just before the
damage (`restore --best-effort`) or refuse the plan with its own advice.
"""

from __future__ import annotations

import contextlib
from collections.abc import Generator

from ..errors import RepositoryError, RestoreError
from ..repository import Repository, SegmentRef, Transaction
from .plan import RestorePlan
from .targets import format_ms


class LogUnreadable(RestoreError):
    """A segment of the plan's log cannot be read: `segment` is the one, `message` says which
    transactions and times it holds and why it cannot be read (code `restore`, as any refused
    restore)."""

    def __init__(self, segment: SegmentRef, cause: RepositoryError) -> None:
        super().__init__(
            f"transactions {segment.first_txn} to {segment.last_txn} ({format_ms(segment.first_seen)}"
            f" to {format_ms(segment.last_seen)}) cannot be read: {cause.message}",
            hint="Run 'cps verify' on the repository.")
        self.segment = segment


def read_log(repo: Repository, plan: RestorePlan) -> Generator[Transaction, None, None]:
    """The plan's transactions after its full backup, in order, up to the plan's end: its last
    transaction, and for a time, the last one first seen at or before it. The first transaction
    past the end ends the log, so what is yielded is always an unbroken run from the full backup
    on, even if capture's clock stepped back inside it. Segments are read a few ahead of the caller
    (`Repository.read_segments`: a few decoded segments in memory at most); LogUnreadable, after
    the transactions before it, when one cannot be read, and never for one past the end."""
    txn = plan.full.txn
    with contextlib.closing(repo.read_segments(plan.db_id, plan.segments)) as segments:
        for ref in plan.segments:
            try:
                segment = next(segments)
            except RepositoryError as exc:
                raise LogUnreadable(ref, exc) from exc
            for transaction in segment.transactions:
                if transaction.txn <= txn:
                    continue
                if transaction.txn > plan.last_txn or (
                        plan.stop_time is not None and transaction.seen_at > plan.stop_time):
                    return
                yield transaction
                txn = transaction.txn
