"""What a restore aims at: the latest transaction, a transaction number, a time, a recovery point.

Times are accepted as ISO 8601 with a zone ("2026-11-22T18:35:01.250Z", "...+01:00"), as local
time without a zone ("2026-11-22 18:35", taken in this machine's zone), or relative to now
("15m ago", "2h ago", "1d ago", "90s ago", "now").
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import datetime

from ..config import parse_duration
from ..errors import UsageError

_RELATIVE = re.compile(r"(.+?)\s+ago")
_TIME_HINT = "Write 2026-11-22T18:35:01.250Z, 2026-11-22 18:35 (local time) or 15m ago."


@dataclass(frozen=True, slots=True)
class Target:
    kind: str  # "latest", "txn", "time" (value in ms since the epoch) or "point"
    value: int | str | None = None

    def describe(self) -> str:
        if self.kind == "latest":
            return "the latest captured transaction"
        if self.kind == "txn":
            return f"transaction {self.value}"
        if self.kind == "point":
            return f"recovery point {self.value!r}"
        assert isinstance(self.value, int)
        return f"time {format_ms(self.value)}"


def parse_time(text: str, now: float | None = None) -> int:
    """A time as milliseconds since the epoch, one that format_ms can show (years 1 to 9999)."""
    try:
        ms = _milliseconds(text, time.time() if now is None else now)
        format_ms(ms)
    except (ValueError, OverflowError, OSError):
        raise UsageError(f"the time {text!r} is out of range", hint=_TIME_HINT) from None
    return ms


def _milliseconds(text: str, current: float) -> int:
    cleaned = text.strip().lower()
    if cleaned == "now":
        return int(current * 1000)
    match = _RELATIVE.fullmatch(cleaned)
    if match:
        return int((current - parse_duration(match[1])) * 1000)
    try:
        parsed = datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise UsageError(f"cannot read {text!r} as a time", hint=_TIME_HINT) from None
    if parsed.tzinfo is None:
        parsed = parsed.astimezone()  # local time of this machine
    return int(parsed.timestamp() * 1000)


def format_ms(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000).astimezone().isoformat(timespec="milliseconds")
