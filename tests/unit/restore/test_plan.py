"""The catalog and the restore planner on made-up listings: every way a target can fall, and what
the repository can prove about it."""

from __future__ import annotations

import pytest

from cps.errors import RestoreError, TargetDamaged, TargetNotCovered
from cps.repository import (
    Chain,
    ChainEnd,
    ChainFolder,
    FullRef,
    ProtectorStatus,
    PrunedRange,
    RecoveryPoint,
    SegmentRef,
    UnreadableFile,
)
from cps.repository.catalog import COMMIT_MARGIN_MS, MISSING, PRUNED, Catalog, build_chains
from cps.restore import Target, plan_restore

S = 1000  # one second in ms
Listing = tuple[Chain | None, tuple[FullRef, ...], tuple[SegmentRef, ...]]


def seg(chain: int, first: int, last: int, t0: int, t1: int) -> SegmentRef:
    return SegmentRef(chain, first, last, t0 * S, t1 * S)


def status(chain: int, durable: int, synced: int, state: str = "protecting") -> ProtectorStatus:
    return ProtectorStatus(state, synced * S, chain, durable, "/db", synced * S, durable_txn=durable)


def catalog(*chains: Listing, number_from: int = 1, points: tuple[RecoveryPoint, ...] = (),
            pruned: tuple[PrunedRange, ...] = (), state: ProtectorStatus | None = None,
            unreadable: tuple[UnreadableFile, ...] = ()) -> Catalog:
    listed = []
    for number, (chain, fulls, segments) in enumerate(chains, number_from):
        problem = None if chain is not None else "its chain file is missing"
        listed.append((ChainFolder(number, chain, problem), fulls, segments))
    warnings: list[str] = []
    views = build_chains(listed, list(points), unreadable, list(pruned), state, warnings)
    return Catalog("mail", views, points, unreadable, state, False, tuple(warnings))


# chain 1: full at txn 1 (t=100), segments 2-10 (t 101-110), full at 10, segments 11-20 (t 111-120)
CHAIN1: Listing = (Chain(1, 100 * S, 1, "first protection"),
                   (FullRef(1, 1, 100 * S), FullRef(1, 10, 111 * S)),
                   (seg(1, 2, 10, 101, 110), seg(1, 11, 20, 111, 120)))
# chain 2 after a gap: full at txn 21 (t=200), segments 22-30 (t 201-210)
CHAIN2: Listing = (Chain(2, 200 * S, 21, "the WAL was reset while the database was not protected"),
                   (FullRef(2, 21, 200 * S),), (seg(2, 22, 30, 201, 210),))
POINT = RecoveryPoint("before upgrade", 1, 15, 115 * S, False)
BOTH = catalog(CHAIN1, CHAIN2, points=(POINT,))


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


def test_every_earlier_full_of_the_span_is_a_way_in_nearest_first() -> None:
    plan = plan_restore(BOTH, Target("txn", 15))
    assert [(b.full.txn, [(s.first_txn, s.last_txn) for s in b.segments]) for b in plan.bases] \
        == [(10, [(11, 20)]), (1, [(2, 10), (11, 20)])]


def test_time_target_picks_the_latest_full_at_or_before_it() -> None:
    plan = plan_restore(BOTH, Target("time", 115 * S))
    assert (plan.chain, plan.full.txn, plan.stop_time) == (1, 10, 115 * S)
    assert [(s.first_txn, s.last_txn) for s in plan.segments] == [(11, 20)]


def test_time_target_before_the_second_full_starts_from_the_first() -> None:
    plan = plan_restore(BOTH, Target("time", 105 * S))
    assert plan.full.txn == 1
    assert [(s.first_txn, s.last_txn) for s in plan.segments] == [(2, 10)]


def test_a_closed_chain_covers_up_to_its_last_transactions_time() -> None:
    """Nothing proves what came after the last transaction: another one stamped the same
    millisecond may have committed, unprotected."""
    plan = plan_restore(BOTH, Target("time", 120 * S - 1))
    assert (plan.chain, plan.stop_time) == (1, 120 * S - 1)
    with pytest.raises(TargetNotCovered, match="gap"):
        plan_restore(BOTH, Target("time", 120 * S))


@pytest.mark.parametrize(
    "when, words",
    [
        (50 * S, "before the earliest"),
        (150 * S, "in a gap"),
        (300 * S, "after the latest time the repository proves"),
    ],
)
def test_times_outside_coverage_name_the_restorable_ranges(when: int, words: str) -> None:
    with pytest.raises(TargetNotCovered) as caught:
        plan_restore(BOTH, Target("time", when))
    assert words in caught.value.message
    assert caught.value.hint is not None
    assert "transactions 1 to 20" in caught.value.hint and "transactions 21 to 30" in caught.value.hint


def test_the_status_extends_the_newest_chain_to_what_it_proves_less_the_commit_margin() -> None:
    covered = catalog(CHAIN1, CHAIN2, state=status(2, 30, 400))
    end = 400 * S - COMMIT_MARGIN_MS  # a commit stamped before the last look may be in flight
    plan = plan_restore(covered, Target("time", end - 1))
    assert (plan.chain, plan.last_txn, plan.stop_time) == (2, 30, end - 1)
    with pytest.raises(TargetNotCovered):
        plan_restore(covered, Target("time", end))


def test_the_next_chains_record_extends_a_closed_chain() -> None:
    recorded = (Chain(2, 200 * S, 21, "restart", "/db", ChainEnd(1, 20, 150 * S)), *CHAIN2[1:])
    end = 150 * S - COMMIT_MARGIN_MS
    plan = plan_restore(catalog(CHAIN1, recorded), Target("time", end - 1))
    assert (plan.chain, plan.last_txn) == (1, 20)
    with pytest.raises(TargetNotCovered):
        plan_restore(catalog(CHAIN1, recorded), Target("time", end))


@pytest.mark.parametrize("txn", [31, 1000])
def test_transactions_after_the_latest(txn: int) -> None:
    with pytest.raises(TargetNotCovered, match=f"transaction {txn} is after the latest"):
        plan_restore(BOTH, Target("txn", txn))


MIDDLE_GONE: Listing = (CHAIN1[0], (FullRef(1, 1, 100 * S),),
                        (seg(1, 2, 5, 101, 105), seg(1, 9, 20, 109, 120)))


def test_a_missing_segment_in_the_middle_is_damage_for_every_target_past_it() -> None:
    holed = catalog(MIDDLE_GONE, state=status(1, 20, 500))
    [view] = holed.chains
    assert [(h.first_txn, h.last_txn, h.kind) for h in view.holes] == [(6, 20, MISSING)]
    assert plan_restore(holed, Target("txn", 5)).last_txn == 5
    for target in (Target("txn", 7), Target("txn", 12), Target("latest"),
                   Target("time", 400 * S), Target("time", 106 * S)):
        with pytest.raises(TargetDamaged) as caught:
            plan_restore(holed, target)
        assert caught.value.hint is not None and "--best-effort" in caught.value.hint
    # Before the hole a time names a state only up to the last transaction's own time.
    assert plan_restore(holed, Target("time", 104 * S)).stop_time == 104 * S
    with pytest.raises(TargetDamaged):
        plan_restore(holed, Target("time", 105 * S))


def test_best_effort_gives_the_latest_provable_state_before_the_target_and_says_why() -> None:
    holed = catalog(MIDDLE_GONE, state=status(1, 20, 500))
    for target in (Target("latest"), Target("txn", 12), Target("time", 400 * S)):
        plan = plan_restore(holed, target, best_effort=True)
        assert (plan.last_txn, plan.stop_time) == (5, None)
        assert plan.shortfall is not None and "6 to 20" in plan.shortfall


@pytest.mark.parametrize("marker", ["point", "later full", "status", "next chain",
                                    "unreadable point"])
def test_a_missing_last_segment_is_seen_from_what_came_after_it(marker: str) -> None:
    chain, fulls, segments = CHAIN1
    cut = segments[:1]  # the segment of 11-20 is gone
    kwargs: dict[str, object] = {}
    listings: list[Listing] = [(chain, fulls[:1], cut)]
    if marker == "point":
        kwargs["points"] = (RecoveryPoint("p", 1, 18, 118 * S, False),)
    elif marker == "later full":
        listings = [(chain, (*fulls[:1], FullRef(1, 18, 119 * S)), cut)]
    elif marker == "status":
        kwargs["state"] = status(1, 18, 130)
    elif marker == "next chain":
        listings.append((Chain(2, 200 * S, 19, "restart"), (FullRef(2, 19, 200 * S),), ()))
    else:
        kwargs["unreadable"] = (UnreadableFile("p.point", 18, "fails its checksum"),)
    cat = catalog(*listings, **kwargs)  # type: ignore[arg-type]
    first = cat.chains[0]
    assert first.last_txn == 18
    assert [(h.first_txn, h.kind) for h in first.holes][0] == (11, MISSING)
    with pytest.raises(TargetDamaged):
        plan_restore(cat, Target("txn", 18) if marker != "later full" else Target("txn", 15))
    if marker in ("point", "status", "unreadable point"):
        with pytest.raises(TargetDamaged, match="the latest captured transaction is 18"):
            plan_restore(cat, Target("latest"))


def test_pruned_ranges_are_not_covered_and_said_to_be_removed_by_prune() -> None:
    chain, fulls, segments = CHAIN1
    pruned = (PrunedRange(1, 1, 10, 100 * S, 110 * S, 500 * S),)
    cat = catalog((chain, fulls[1:], segments[1:]), pruned=pruned)
    [view] = cat.chains
    assert [(h.first_txn, h.last_txn, h.kind) for h in view.holes] == [(1, 9, PRUNED)]
    for target in (Target("txn", 5), Target("time", 105 * S), Target("time", 100 * S)):
        with pytest.raises(TargetNotCovered, match="removed by prune"):
            plan_restore(cat, target)
    plan = plan_restore(cat, Target("time", 115 * S))
    assert (plan.full.txn, plan.stop_time) == (10, 115 * S)


def test_a_time_before_a_later_full_of_a_pruned_chain_is_refused_not_moved_later() -> None:
    chain, fulls, segments = CHAIN1
    cat = catalog((chain, fulls[1:], segments[1:]))  # no prune record: the files are just gone
    with pytest.raises(TargetDamaged):
        plan_restore(cat, Target("time", 105 * S))
    assert plan_restore(cat, Target("time", 111 * S)).full.txn == 10


def test_a_chain_whose_chain_file_is_lost_is_rebuilt_from_its_files() -> None:
    cat = catalog((None, CHAIN1[1], CHAIN1[2]), CHAIN2)
    first = cat.chains[0]
    assert first.problem is not None and first.restorable
    assert (first.first_txn, first.last_txn) == (1, 20)
    assert plan_restore(cat, Target("txn", 15)).chain == 1
    assert cat.warnings


def test_whole_chains_removed_by_prune_keep_their_numbers_and_say_so() -> None:
    pruned = (PrunedRange(1, 1, 20, 100 * S, 120 * S, 500 * S),)
    cat = catalog(CHAIN2, number_from=2, pruned=pruned)
    assert [c.chain.chain for c in cat.chains] == [1, 2]
    assert cat.chains[0].removed
    with pytest.raises(TargetNotCovered, match="removed by prune"):
        plan_restore(cat, Target("txn", 15))


def test_overlapping_segments_are_walked_through() -> None:
    overlapping: Listing = (CHAIN1[0], (FullRef(1, 1, 100 * S),),
                            (seg(1, 2, 8, 101, 108), seg(1, 5, 12, 105, 112)))
    cat = catalog(overlapping)
    assert cat.chains[0].last_txn == 12 and not cat.chains[0].holes
    plan = plan_restore(cat, Target("txn", 12))
    assert [(s.first_txn, s.last_txn) for s in plan.segments] == [(2, 8), (5, 12)]


def test_a_chain_whose_first_full_never_finished_captured_nothing() -> None:
    unfinished: Listing = (Chain(3, 300 * S, 21, "restart"), (), ())
    cat = catalog(CHAIN1, unfinished)
    assert cat.chains[1].incomplete and not cat.chains[1].holes
    assert plan_restore(cat, Target("latest")).last_txn == 20
    with pytest.raises(TargetNotCovered):
        plan_restore(catalog(unfinished), Target("latest"))


def test_unknown_and_ambiguous_recovery_points() -> None:
    with pytest.raises(TargetNotCovered, match="no recovery point named 'nope'") as caught:
        plan_restore(BOTH, Target("point", "nope"))
    assert caught.value.hint is not None and "'before upgrade'" in caught.value.hint
    twice = catalog(CHAIN1, points=(RecoveryPoint("x", 1, 3, 0, False),
                                    RecoveryPoint("x", 1, 5, 0, False)))
    with pytest.raises(RestoreError, match="2 recovery points are named 'x'"):
        plan_restore(twice, Target("point", "x"))
