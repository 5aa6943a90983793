"""Planning a target against the repository as it is now, waiting a moment for a running
protector when the target is a time it has not made durable yet.

A protector makes each commit durable within its sync interval and reports it in its status every
second, so "now" (or a few seconds ago) is always just past what the repository proves. While a
protector runs, a time that is not in the future is worth waiting for: the plan is retried until
the protector's status covers it, for at most `wait` seconds.
"""

from __future__ import annotations

import time

from ..errors import TargetDamaged, TargetNotCovered
from ..repository import Repository
from ..repository.catalog import Catalog, load_catalog
from .plan import RestorePlan, plan_restore
from .targets import Target

WAIT_FOR_PROTECTOR = 15.0  # seconds: a sync interval and a status write, many times over
RETRY_SECONDS = 0.1


def resolve(repo: Repository, db_id: str, target: Target, *, best_effort: bool = False,
            wait: float = WAIT_FOR_PROTECTOR) -> tuple[Catalog, RestorePlan]:
    """The catalog of `db_id` and the plan of `target` on it (plan_restore)."""
    deadline = time.monotonic() + wait
    while True:
        catalog = load_catalog(repo, db_id)
        try:
            return catalog, plan_restore(catalog, target)
        except (TargetNotCovered, TargetDamaged) as refused:
            waiting = isinstance(refused, TargetNotCovered) and _worth_waiting(catalog, target)
            if waiting and time.monotonic() < deadline:
                time.sleep(RETRY_SECONDS)
                continue
            if not best_effort:
                raise
        return catalog, plan_restore(catalog, target, best_effort=True)


def _worth_waiting(catalog: Catalog, target: Target) -> bool:
    """A time past everything the repository proves, but not in the future, while a protector
    that is not failing runs."""
    if target.kind != "time" or not catalog.protector_running or not catalog.spans:
        return False
    assert isinstance(target.value, int)
    if catalog.status is not None and catalog.status.error:
        return False
    latest_end = max(s.end_time for s in catalog.spans)
    return latest_end <= target.value <= time.time() * 1000
