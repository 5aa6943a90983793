"""A standby copy: a database file kept close behind a repository by replaying its log into it, to
be promoted to a normal database when the primary is lost.

The copy is seeded once by a restore (apply.restore, into `<copy>.seeding`, then moved into place).
From then on each round (`replay`) applies only the transactions the repository has captured since
the copy's transaction: the newest image of each page they wrote is written over the copy, which is
then cut to the database's size at the last one, exactly as a restore applies the log after its
full backup (apply.LogPages), so the copy is always a database a restore of the same transaction
would write. With a lag, a round applies only transactions that committed at least `lag` before
its time, like a lagged database copy in Exchange: a mass delete or any other logical damage
reaches the copy only after the lag, and promoting to a point before it takes everything else.

The copy is seeded again, whole, only when its transaction can no longer be followed by log: a new
chain started (its reason is kept as `seed_reason`), prune removed the log after it, or that log is
damaged. Replay never goes backwards by itself: a target behind the copy (a longer lag, a clock
stepped back) waits until time passes it.

Crash safety rests on the standby record (repository/standby_record.py), replaced atomically
before each step that changes the file in a way a later round could not simply redo:

- Pages are written only after the record says `applying`, with `dirty_through` the last
  transaction whose pages may be in the file. Applying the log again from the record's
  transaction to at least that one rewrites every page the interrupted round wrote, so the next
  round (or a promotion) goes at least that far, and seeds anew if that log is gone.
- A new seed is complete at `<copy>.seeding`, and checked, before the record names its
  transaction with the state `seeding`; only then is it moved into place.

Promotion (`promote`) plays the log forward to the chosen point only, checks the file with
`PRAGMA integrity_check`, and marks the record `promoted`: from then on the file is a normal mail
database, and replay refuses to touch it. A point behind the copy is restored whole into place.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from ..errors import StandbyError, TargetDamaged, TargetNotCovered
from ..repository import Repository
from ..repository.catalog import Catalog, Span, load_catalog
from ..repository.standby_record import (
    APPLYING,
    PROMOTED,
    REPLAYING,
    SEEDING,
    StandbyRecord,
    beside,
    read_record,
    record_path,
    write_record,
)
from .apply import LogPages, check_database, install_database, remove_database, restore
from .log import LogUnreadable, read_log
from .plan import Base, RestorePlan, plan_restore
from .targets import Target, format_ms

SEEDING_SUFFIX = ".seeding"  # where a new seed of the copy is restored before it is moved in


@dataclass(frozen=True, slots=True)
class Round:
    """What one round of replay did."""

    record: StandbyRecord
    applied: int  # transactions applied to the copy
    seeded: str | None  # why the copy was restored whole, or None when it was not


def begin(repo: Repository, db_id: str, copy: Path, *, repository: str, lag_ms: int,
          now_ms: int) -> StandbyRecord:
    """Claim `copy` for a new standby of `db_id` (its record, nothing seeded yet); the first
    round of `replay` seeds it. Refuses a copy or record that exists."""
    repo.database(db_id)  # names the databases there when it is not one of them
    for path in (copy, record_path(copy)):
        if path.exists():
            raise StandbyError(f"{path} already exists",
                               hint="Choose another path, or remove the old copy and its "
                                    ".standby record first.")
    record = StandbyRecord(db_id, repository, lag_ms, now_ms, SEEDING, chain=0, txn=0,
                           txn_time=None, db_pages=0, page_size=0, replayed_at=0)
    write_record(copy, record)
    return record


def open_record(copy: Path) -> StandbyRecord:
    """The record of the standby at `copy`, with an interrupted seed finished."""
    try:
        record = read_record(copy)
    except FileNotFoundError:
        raise StandbyError(f"{copy} is not a standby copy: {record_path(copy)} is missing",
                           hint="Create one with 'cps standby create'.") from None
    return _settled(copy, record)


def replay(repo: Repository, copy: Path, now_ms: int) -> Round:
    """One round: bring the copy to the newest state its lag allows."""
    record = open_record(copy)
    _refuse_promoted(copy, record)
    catalog = load_catalog(repo, record.db_id)
    target = _lagged_target(catalog, record, now_ms)
    plan = _plan(catalog, record, target)
    if plan is None:
        return Round(_seen(copy, record, catalog, now_ms, problem=""), 0, None)
    done = _bring_to(repo, copy, record, catalog, plan, now_ms, backwards=False)
    if plan.shortfall and target.kind == "latest" and not done.record.problem:
        # The latest state is not restorable (a damaged or missing file): the copy stays at the
        # last one before it, and says why.
        noted = replace(done.record, problem=plan.shortfall)
        write_record(copy, noted)
        return replace(done, record=noted)
    return done


def promote(repo: Repository, copy: Path, catalog: Catalog, plan: RestorePlan, now_ms: int
            ) -> Round:
    """Play the copy forward to `plan`'s end exactly (restore it whole when the plan is behind
    it), check it, and make it a normal database. Refuses, leaving a sound standby, when the
    log to the target cannot be read."""
    record = open_record(copy)
    _refuse_promoted(copy, record)
    done = _bring_to(repo, copy, record, catalog, plan, now_ms, backwards=True)
    if done.record.problem:
        raise TargetDamaged(f"the copy cannot be played forward to the target: "
                            f"{done.record.problem}",
                            hint="Promote to an earlier point ('cps timeline' shows them), and "
                                 "run 'cps verify repo' on the repository. The standby is intact "
                                 f"at transaction {done.record.txn}.")
    check_database(copy)
    promoted = replace(done.record, state=PROMOTED, promoted_at=now_ms)
    write_record(copy, promoted)
    return replace(done, record=promoted)


# Planning


def _lagged_target(catalog: Catalog, record: StandbyRecord, now_ms: int) -> Target:
    """The newest state the lag allows: the latest, or the state at the lag's cut-off."""
    cutoff = now_ms - record.lag_ms
    latest_end = max((s.end_time for s in catalog.spans), default=0)
    return Target("latest") if record.lag_ms == 0 or cutoff >= latest_end else \
        Target("time", cutoff)


def _plan(catalog: Catalog, record: StandbyRecord, target: Target) -> RestorePlan | None:
    """The plan of `target` (the latest state before it the repository proves), None when the
    repository proves none yet; for a copy left part-way, at least to the transaction its pages
    may have reached."""
    try:
        plan = plan_restore(catalog, target, best_effort=True)
    except (TargetNotCovered, TargetDamaged):
        return None
    if record.state == APPLYING and plan.last_txn < record.dirty_through:
        with contextlib.suppress(TargetNotCovered, TargetDamaged):
            return plan_restore(catalog, Target("txn", record.dirty_through))
    return plan


def _behind(record: StandbyRecord, plan: RestorePlan) -> bool:
    """Whether the plan's end is before the copy's transaction."""
    if plan.chain != record.chain:
        return False
    if plan.stop_time is not None and record.txn_time is not None:
        return plan.stop_time < record.txn_time
    return plan.last_txn < record.txn


def _why_seed(catalog: Catalog, record: StandbyRecord, plan: RestorePlan, backwards: bool
              ) -> str | None:
    """Why the copy cannot follow the plan by log alone, or None when it can."""
    if record.chain == 0:
        return "the first copy"
    if plan.chain < record.chain:
        return f"the target is in chain {plan.chain}, before the copy's chain {record.chain}"
    if plan.chain != record.chain:
        chain = next(c.chain for c in catalog.chains if c.chain.chain == plan.chain)
        return f"chain {plan.chain} started: {chain.reason}"
    if record.state == APPLYING and plan.last_txn < record.dirty_through:
        return (f"the copy was left part-way to transaction {record.dirty_through}, and the log "
                "to finish it is no longer restorable")
    span = _span(catalog, record.chain, record.txn)
    if span is None:
        return (f"transaction {record.txn}, which the copy holds, is no longer restorable from "
                "the repository (pruned or damaged)")
    if not span.holds(plan.last_txn):
        return f"the log after transaction {span.last_txn} is missing"
    if backwards and _behind(record, plan):
        return f"the target is before transaction {record.txn}, which the copy holds"
    return None


def _span(catalog: Catalog, chain: int, txn: int) -> Span | None:
    return next((s for s in catalog.spans if s.chain == chain and s.holds(txn)), None)


# Carrying a plan out


def _bring_to(repo: Repository, copy: Path, record: StandbyRecord, catalog: Catalog,
              plan: RestorePlan, now_ms: int, *, backwards: bool) -> Round:
    why = _why_seed(catalog, record, plan, backwards)
    if why is not None:
        return Round(_seed(repo, copy, record, catalog, plan, why, now_ms), 0, why)
    if _behind(record, plan):
        return Round(_seen(copy, record, catalog, now_ms, problem=""), 0, None)
    span = _span(catalog, record.chain, record.txn)
    assert span is not None  # _why_seed found it
    return _apply(repo, copy, record, catalog, span, plan, now_ms)


def _apply(repo: Repository, copy: Path, record: StandbyRecord, catalog: Catalog, span: Span,
           plan: RestorePlan, now_ms: int) -> Round:
    segments = tuple(s for s in span.segments if s.last_txn > record.txn
                     and s.first_txn <= plan.last_txn
                     and (plan.stop_time is None or s.first_time <= plan.stop_time))
    base = Base(span.fulls[0], segments)

    def before_write(txn: int) -> None:
        write_record(copy, replace(record, state=APPLYING,
                                   dirty_through=max(txn, record.dirty_through)))

    fd = os.open(copy, os.O_RDWR)
    try:
        log, problem = _play(repo, plan, base, fd, record, before_write)
        whole = log.txn >= record.dirty_through  # else the pages written part-way stay a mix
        if whole:
            log.finish()
            os.ftruncate(fd, log.db_pages * record.page_size)
            os.fsync(fd)
    finally:
        os.close(fd)
    if not whole:
        why = f"the log needed to finish the copy cannot be read: {problem}"
        return Round(_seed(repo, copy, record, catalog, plan, why, now_ms), 0, why)
    applied = log.txn - record.txn
    moved = replace(record, state=REPLAYING, txn=log.txn, db_pages=log.db_pages, dirty_through=0,
                    txn_time=log.txn_time if applied else record.txn_time)
    return Round(_seen(copy, moved, catalog, now_ms, problem=problem), applied, None)


def _play(repo: Repository, plan: RestorePlan, base: Base, fd: int, record: StandbyRecord,
          before_write: Callable[[int], None]) -> tuple[LogPages, str]:
    """The log after the copy's transaction, up to the plan's end, applied to `fd` (pages past
    LOG_HELD_BYTES written out early), and what stopped it short ("" when nothing did)."""
    log = LogPages(fd, record.page_size, record.txn, record.db_pages, before_write)
    try:
        with contextlib.closing(read_log(repo, plan, base, after=record.txn)) as transactions:
            for transaction in transactions:
                log.apply(transaction)
    except LogUnreadable as damage:
        return log, damage.message
    return log, ""


def _seed(repo: Repository, copy: Path, record: StandbyRecord, catalog: Catalog,
          plan: RestorePlan, why: str, now_ms: int) -> StandbyRecord:
    """Restore the copy whole at the plan's end, then move it into place (see the module's
    docstring for the order)."""
    seeding = beside(copy, SEEDING_SUFFIX)
    result = restore(repo, plan, seeding, force=True, best_effort=True)
    # A copy at a full backup with no log after it: its state was current when the full backup
    # was taken, which is the latest its transaction can have committed.
    txn_time = result.txn_time or next(
        (b.full.taken_at for b in plan.bases if b.full.txn == result.txn), None)
    seeded = replace(record, state=SEEDING, chain=result.chain, txn=result.txn,
                     txn_time=txn_time, db_pages=result.pages,
                     page_size=result.page_size, dirty_through=0, seeds=record.seeds + 1,
                     seed_reason=why)
    write_record(copy, seeded)
    install_database(seeding, copy)
    return _seen(copy, replace(seeded, state=REPLAYING), catalog, now_ms,
                 problem=result.damaged or "")


def _settled(copy: Path, record: StandbyRecord) -> StandbyRecord:
    """The record, with a seed that was interrupted after it was complete moved into place."""
    if record.state != SEEDING or record.chain == 0:
        return record
    seeding = beside(copy, SEEDING_SUFFIX)
    if seeding.exists():
        install_database(seeding, copy)
    settled = replace(record, state=REPLAYING)
    write_record(copy, settled)
    return settled


def _seen(copy: Path, record: StandbyRecord, catalog: Catalog, now_ms: int, *, problem: str
          ) -> StandbyRecord:
    """The record after a round that read `catalog` at `now_ms`, written."""
    newest = catalog.newest
    seen = replace(record, replayed_at=now_ms, problem=problem,
                   repository_txn=catalog.last_txn,
                   repository_time=newest.spans[-1].end_time if newest and newest.spans else None)
    write_record(copy, seen)
    return seen


def _refuse_promoted(copy: Path, record: StandbyRecord) -> None:
    if record.state == PROMOTED:
        when = format_ms(record.promoted_at) if record.promoted_at else "earlier"
        raise StandbyError(f"{copy} was promoted {when}: it is a normal database now, and is "
                           "not replayed any more",
                           hint="Protect it with 'cps protect', or create a new standby "
                                "elsewhere.")


def discard(copy: Path) -> None:
    """Remove a standby copy, its record and any seed in progress."""
    remove_database(copy)
    remove_database(beside(copy, SEEDING_SUFFIX))
    record_path(copy).unlink(missing_ok=True)
