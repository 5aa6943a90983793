"""Naming points in time: the command-line choices and the one-word form of `cps diff`."""

from __future__ import annotations

import pytest

from cps.errors import UsageError
from cps.granular import parse_point, point_label, point_target
from cps.restore import Target, parse_time


@pytest.mark.parametrize("text, expected", [
    ("latest", Target("latest")),
    ("LATEST", Target("latest")),
    ("txn:42", Target("txn", 42)),
    ("point:before upgrade", Target("point", "before upgrade")),
    ("point:a:b", Target("point", "a:b")),
    ("2026-11-22T18:35:01.250Z", Target("time", 1_795_372_501_250)),
    ("at:2026-11-22T18:35:01.250Z", Target("time", 1_795_372_501_250)),
    ("AT: 2026-11-22T18:35:01.250Z", Target("time", 1_795_372_501_250)),
])
def test_point_words(text: str, expected: Target) -> None:
    assert parse_point(text) == expected


def test_a_local_time_is_a_time() -> None:
    assert parse_point("2026-11-22 18:35") == Target("time", parse_time("2026-11-22 18:35"))


@pytest.mark.parametrize("text", ["txn:", "txn:abc", "txn:²", "point:", "yesterday", "at:", "at:txn:3",
                                  ""])
def test_unreadable_points_say_how_to_write_one(text: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_point(text)
    assert caught.value.hint is not None and "txn:N" in caught.value.hint


def test_exactly_one_point_option() -> None:
    assert point_target(txn=7) == Target("txn", 7)
    assert point_target(recovery_point="nightly") == Target("point", "nightly")
    assert point_target(latest=True) == Target("latest")
    with pytest.raises(UsageError, match="exactly one"):
        point_target()
    with pytest.raises(UsageError, match="exactly one"):
        point_target(latest=True, txn=3)


def test_a_point_is_named_by_its_recovery_point_or_its_transaction() -> None:
    assert point_label(Target("point", "before/upgrade"), 12) == "before/upgrade"
    assert point_label(Target("time", 1_795_372_501_250), 12) == "txn 12"
    assert point_label(Target("latest"), 40) == "txn 40"
