"""The count of pages changed since a full backup: each page once, and a failed full backup's
pages given back."""

from __future__ import annotations

from cps.capture.changed_pages import ChangedPages


def test_a_page_rewritten_many_times_counts_once() -> None:
    changed = ChangedPages()
    for _ in range(1000):
        changed.add([1, 2, 2, 7])
    assert len(changed) == 3


def test_pages_far_apart_grow_the_marks() -> None:
    changed = ChangedPages()
    changed.add([100_000])
    changed.add([3, 100_000, 250_000])
    assert len(changed) == 3


def test_absorbing_counts_the_union() -> None:
    before, since = ChangedPages(), ChangedPages()
    before.add([1, 5, 900])
    since.add([5, 6])
    since.absorb(before)
    assert len(since) == 4
    since.add([900, 901])
    assert len(since) == 5
    assert len(before) == 3, "the absorbed count is left as it was"
