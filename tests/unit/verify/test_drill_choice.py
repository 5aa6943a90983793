"""verify.drill.choose: which points a restore drill restores, on made-up catalogs (the catalogs
of the planner's tests): random transactions only where a restore can reach, each as likely,
repeatable by seed; the recovery points of the window; the latest state last."""

from __future__ import annotations

from cps.repository import RecoveryPoint
from cps.restore import Target
from cps.verify.drill import Aim, choose
from tests.unit.restore.test_plan import CHAIN1, CHAIN2, POINT, S, catalog

RESTORABLE = set(range(1, 21)) | set(range(21, 31))  # chain 1: txns 1-20; chain 2: 21-30


def random_txns(aims: list[Aim]) -> list[int]:
    return [aim.txn for aim in aims if aim.chosen == "random" and aim.txn is not None]


def test_random_transactions_are_distinct_restorable_and_repeatable_by_seed() -> None:
    both = catalog(CHAIN1, CHAIN2)
    for seed in range(50):
        drawn = random_txns(choose(both, 5, 0, seed))
        assert len(set(drawn)) == 5 and set(drawn) <= RESTORABLE
        assert drawn == random_txns(choose(both, 5, 0, seed))
    seen = {txn for seed in range(400) for txn in random_txns(choose(both, 3, 0, seed))}
    assert seen == RESTORABLE  # every span's transactions are drawn, the first and last too


def test_more_points_than_transactions_restores_each_once() -> None:
    assert sorted(random_txns(choose(catalog(CHAIN2), 50, 0, 1))) == list(range(21, 31))


def test_the_recovery_points_of_the_window_and_the_latest_state_last() -> None:
    old = RecoveryPoint("last week", 1, 5, 50 * S, True)
    twin = RecoveryPoint("nightly", 2, 25, 205 * S, True)
    again = RecoveryPoint("nightly", 2, 28, 208 * S, True)
    aims = choose(catalog(CHAIN1, CHAIN2, points=(old, POINT, twin, again)), 0, 100 * S, 3)
    assert aims == [
        Aim(Target("point", "before upgrade"), "recovery point 'before upgrade'", 15),
        Aim(Target("txn", 25), "recovery point 'nightly'", 25),  # a name given twice: by txn
        Aim(Target("txn", 28), "recovery point 'nightly'", 28),
        Aim(Target("latest"), "latest", None),
    ]


def test_a_repository_with_nothing_restorable_still_drills_the_latest_state() -> None:
    assert choose(catalog(), 3, 0, 1) == [Aim(Target("latest"), "latest", None)]
