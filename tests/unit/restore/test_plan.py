"""The restore planner on made-up catalogs: every way a target can fall."""

from __future__ import annotations

import pytest

from cps.errors import RestoreError, TargetNotCovered
from cps.repository import Chain, FullRef, RecoveryPoint, SegmentRef
from cps.restore import Catalog, ChainView, Target, plan_restore

S = 1000  # one second in ms


def seg(chain: int, first: int, last: int, t0: int, t1: int) -> SegmentRef:
    return SegmentRef(chain, first, last, t0 * S, t1 * S)


def catalog(*views: ChainView, points: tuple[RecoveryPoint, ...] = ()) -> Catalog:
    return Catalog("mail", views, points)


# chain 1: full at txn 1 (t=100), segments 2-10 (t 101-110), full at 10, segments 11-20 (t 111-120)
CHAIN1 = ChainView(
    Chain(1, 100 * S, 1, "first protection"),
    (FullRef(1, 1, 100 * S), FullRef(1, 10, 111 * S)),
    (seg(1, 2, 10, 101, 110), seg(1, 11, 20, 111, 120)),
)
# chain 2 after a gap: full at txn 21 (t=200), segments 22-30 (t 201-210)
CHAIN2 = ChainView(
    Chain(2, 200 * S, 21, "the WAL was reset while the database was not protected"),
    (FullRef(2, 21, 200 * S),),
    (seg(2, 22, 30, 201, 210),),
)
BOTH = catalog(CHAIN1, CHAIN2, points=(RecoveryPoint("before upgrade", 1, 15, 115 * S, False),))


@pytest.mark.parametrize(
    "target, chain, full_txn, segments, last_txn",
    [
        (Target("latest"), 2, 21, [(22, 30)], 30),
        (Target("txn", 1), 1, 1, [], 1),
        (Target("txn", 9), 1, 1, [(2, 10)], 9),
        (Target("txn", 10), 1, 10, [], 10),
        (Target("txn", 15), 1, 10, [(11, 20)], 15),
        (Target("txn", 21), 2, 21, [], 21),
        (Target("point", "before upgrade"), 1, 10, [(11, 20)], 15),
    ],
)
def test_transaction_targets(target: Target, chain: int, full_txn: int,
                             segments: list[tuple[int, int]], last_txn: int) -> None:
    plan = plan_restore(BOTH, target)
    assert (plan.chain, plan.full.txn, plan.last_txn) == (chain, full_txn, last_txn)
    assert [(s.first_txn, s.last_txn) for s in plan.segments] == segments
    assert plan.stop_time is None


def test_time_target_picks_the_latest_full_at_or_before_it() -> None:
    plan = plan_restore(BOTH, Target("time", 115 * S))
    assert (plan.chain, plan.full.txn, plan.stop_time) == (1, 10, 115 * S)
    assert [(s.first_txn, s.last_txn) for s in plan.segments] == [(11, 20)]


def test_time_target_before_the_second_full_starts_from_the_first() -> None:
    plan = plan_restore(BOTH, Target("time", 105 * S))
    assert (plan.full.txn, plan.last_txn) == (1, 10)


@pytest.mark.parametrize(
    "when, words",
    [
        (50 * S, "before the earliest"),
        (150 * S, "inside a gap"),
        (300 * S, "after the latest captured transaction"),
    ],
)
def test_times_outside_coverage_name_the_restorable_ranges(when: int, words: str) -> None:
    with pytest.raises(TargetNotCovered) as caught:
        plan_restore(BOTH, Target("time", when))
    assert words in caught.value.message
    assert caught.value.hint is not None
    assert "transactions 1 to 20" in caught.value.hint and "transactions 21 to 30" in caught.value.hint


def test_a_running_protector_extends_coverage_to_now() -> None:
    plan = plan_restore(BOTH, Target("time", 300 * S), synced_through=400 * S)
    assert (plan.chain, plan.last_txn) == (2, 30)


@pytest.mark.parametrize("txn", [0, 31, 1000])
def test_transactions_outside_coverage(txn: int) -> None:
    with pytest.raises(TargetNotCovered, match=f"transaction {txn} is not restorable"):
        plan_restore(BOTH, Target("txn", txn))


def test_missing_segment_ends_the_chain_before_it() -> None:
    holed = ChainView(CHAIN1.chain, (FullRef(1, 1, 100 * S),),
                      (seg(1, 2, 5, 101, 105), seg(1, 9, 20, 109, 120)))
    cat = catalog(holed)
    assert holed.last_txn == 5 and holed.missing_after() == 5
    with pytest.raises(RestoreError, match="the log after transaction 5 is missing") as missing:
        plan_restore(cat, Target("latest"))
    assert missing.value.hint is not None and "--best-effort" in missing.value.hint
    assert plan_restore(cat, Target("latest"), best_effort=True).last_txn == 5
    with pytest.raises(TargetNotCovered) as caught:
        plan_restore(cat, Target("txn", 12))
    assert caught.value.hint is not None and "transactions 1 to 5" in caught.value.hint


def test_overlapping_segments_are_walked_through() -> None:
    overlapping = ChainView(CHAIN1.chain, (FullRef(1, 1, 100 * S),),
                            (seg(1, 2, 8, 101, 108), seg(1, 5, 12, 105, 112)))
    assert overlapping.last_txn == 12
    plan = plan_restore(catalog(overlapping), Target("txn", 12))
    assert [(s.first_txn, s.last_txn) for s in plan.segments] == [(2, 8), (5, 12)]


def test_chain_without_a_finished_full_is_not_restorable() -> None:
    unfinished = ChainView(Chain(3, 300 * S, 31, "restart"), (), ())
    cat = catalog(CHAIN1, unfinished)
    assert plan_restore(cat, Target("latest")).last_txn == 20
    with pytest.raises(TargetNotCovered):
        plan_restore(catalog(unfinished), Target("latest"))


def test_unknown_and_ambiguous_recovery_points() -> None:
    with pytest.raises(TargetNotCovered, match="no recovery point named 'nope'") as caught:
        plan_restore(BOTH, Target("point", "nope"))
    assert caught.value.hint is not None and "'before upgrade'" in caught.value.hint
    twice = catalog(CHAIN1, points=(RecoveryPoint("x", 1, 3, 0, False), RecoveryPoint("x", 1, 5, 0, False)))
    with pytest.raises(RestoreError, match="2 recovery points are named 'x'"):
        plan_restore(twice, Target("point", "x"))
