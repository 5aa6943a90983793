"""Choosing the full backup a plan starts from: the nearest one that can be read.

A plan lists every full backup of its span that is not past the target (plan.py). A restore or a
point image is built from the nearest; when that full backup, or a pack holding one of its pages,
cannot be read, the next one serves instead, with more log to apply, and the result says which
were passed over. Damage to the log itself is not worked around here: every base of a plan reads
the same log up to the target.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from ..errors import CorruptFile, MissingFile
from .plan import Base, RestorePlan

T = TypeVar("T")


def from_nearest_readable(plan: RestorePlan, build: Callable[[Base], T]
                          ) -> tuple[T, tuple[str, ...]]:
    """`build(base)` for the plan's nearest base whose full backup and packs can be read, and why
    each nearer one was passed over. The last base's error is raised when none can be read."""
    passed: list[str] = []
    for base in plan.bases[:-1]:
        try:
            return build(base), tuple(passed)
        except (CorruptFile, MissingFile) as exc:
            passed.append(f"the full backup at transaction {base.full.txn} cannot be used "
                          f"({exc.message}); an earlier one and more log were used instead")
    return build(plan.bases[-1]), tuple(passed)
