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

from ..errors import RepositoryError, TargetDamaged
from ..repository import Repository, SegmentRef, Transaction
from .plan import Base, RestorePlan
from .targets import format_ms


class LogUnreadable(TargetDamaged):
    """The plan's log cannot be read through: `segment` is where it broke (None: right after the
    full backup), `message` says which transactions and times it holds and what is wrong."""

    def __init__(self, segment: SegmentRef | None, problem: str) -> None:
        where = "the log after the full backup" if segment is None else (
            f"transactions {segment.first_txn} to {segment.last_txn} "
            f"({format_ms(segment.first_time)} to {format_ms(segment.last_time)})")
        super().__init__(f"{where} cannot be read: {problem}",
                         hint="Restore the latest state before the damage with --best-effort, "
                              "and run 'cps timeline' to see what the repository holds.")
        self.segment = segment


def read_log(repo: Repository, plan: RestorePlan, base: Base, *, after: int | None = None
             ) -> Generator[Transaction, None, None]:
    """The transactions after `base`'s full backup (or after transaction `after`, which a copy
    already holds: a standby's), in order, up to the plan's end: its last
    transaction, and for a time, the last one committed at or before it. The first transaction
    past the end ends the log, so what is yielded is always an unbroken run from the full backup
    on, even if a clock stepped back inside it. Segments are read a few ahead of the caller
    (`Repository.read_segments`: a few decoded segments in memory at most); LogUnreadable, after
    the transactions before it, when one cannot be read, when one does not follow on from the
    one before, or when the log ends before the plan's end, never for one past the end."""
    txn = base.full.txn if after is None else after
    with contextlib.closing(repo.read_segments(plan.db_id, base.segments)) as segments:
        for ref in base.segments:
            try:
                segment = next(segments)
            except RepositoryError as exc:
                raise LogUnreadable(ref, exc.message) from exc
            for transaction in segment.transactions:
                if transaction.txn <= txn:
                    continue
                if transaction.txn > plan.last_txn or (
                        plan.stop_time is not None and transaction.time > plan.stop_time):
                    return
                if transaction.txn != txn + 1:
                    raise LogUnreadable(ref, f"it goes on at transaction {transaction.txn} after "
                                             f"{txn}: the log between them is missing")
                yield transaction
                txn = transaction.txn
    if txn < plan.last_txn and plan.stop_time is None:
        last = base.segments[-1] if base.segments else None
        raise LogUnreadable(last, f"the log ends at transaction {txn}, before {plan.last_txn}")
