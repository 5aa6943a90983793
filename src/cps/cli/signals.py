"""Ctrl-C and SIGTERM for commands that stop cleanly rather than die where they stand."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any


@contextmanager
def stop_on_signals(then: Callable[[], None] | None = None) -> Iterator[threading.Event]:
    """An event that SIGINT and SIGTERM set, calling `then` after; a second signal acts as it
    would have without this."""
    stop = threading.Event()
    previous: dict[signal.Signals, Any] = {}

    def handle(signum: int, _frame: FrameType | None) -> None:
        stop.set()
        signal.signal(signum, previous[signal.Signals(signum)])
        if then is not None:
            then()

    previous.update({s: signal.signal(s, handle) for s in (signal.SIGINT, signal.SIGTERM)})
    try:
        yield stop
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
