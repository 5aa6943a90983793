from __future__ import annotations

from datetime import datetime

import pytest

from cps.errors import UsageError
from cps.restore import parse_time

NOW = 1_795_444_800.0  # 2026-11-23T11:20:00Z


@pytest.mark.parametrize(
    "text, expected_ms",
    [
        ("2026-11-22T18:35:01.250Z", 1_795_372_501_250),
        ("2026-11-22T19:35:01.250+01:00", 1_795_372_501_250),
        ("now", int(NOW * 1000)),
        ("15m ago", int((NOW - 900) * 1000)),
        ("2h ago", int((NOW - 7200) * 1000)),
        ("1d ago", int((NOW - 86400) * 1000)),
        ("500ms ago", int((NOW - 0.5) * 1000)),
    ],
)
def test_times(text: str, expected_ms: int) -> None:
    assert parse_time(text, now=NOW) == expected_ms


def test_local_time_without_zone_is_this_machines_zone() -> None:
    expected = int(datetime(2026, 11, 22, 18, 35).astimezone().timestamp() * 1000)
    assert parse_time("2026-11-22 18:35") == expected


@pytest.mark.parametrize("text", ["yesterday", "15 minutes", "2026-13-01", ""])
def test_unreadable_times_say_how_to_write_one(text: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_time(text, now=NOW)
    assert caught.value.hint is not None and "15m ago" in caught.value.hint


@pytest.mark.parametrize("text", ["0001-01-01", "9999-12-31T23:59:59-14:00", "99999999999w ago"])
def test_times_no_date_can_show_are_out_of_range(text: str) -> None:
    with pytest.raises(UsageError, match="out of range"):
        parse_time(text, now=NOW)
