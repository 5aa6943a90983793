"""Ctrl-C and SIGTERM for commands that stop cleanly rather than die where they stand, and the end
of standard input for a command whose supervisor may die without a word.

The event is never set by the signal handler itself. A Python signal handler runs on the main
thread between two bytecodes, which may be inside `stop.wait()` just after it took the event's
lock back; setting the event there takes that lock again, and the process hangs for good (a
protector did, on SIGTERM). The handler only puts the previous handler back; the signal also
reaches a pipe through `signal.set_wakeup_fd`, written by the interpreter without any lock, and a
watcher thread reading that pipe sets the event.

A supervising process (the server, for its protectors) holds the write end of its child's standard
input for as long as it lives, and never writes to it. The kernel closes that end when the
supervisor dies, SIGKILL included, so `stop_when_input_ends` stops the child as SIGTERM would: it
makes what it captured durable and stops, instead of running on unsupervised.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_QUIT = b"\0"  # written by the context's exit: the watcher ends


@contextmanager
def stop_on_signals(then: Callable[[], None] | None = None) -> Iterator[threading.Event]:
    """An event that SIGINT and SIGTERM set, calling `then` after; a second signal acts as it
    would have without this. Enter it on the main thread."""
    stop = threading.Event()
    previous: dict[signal.Signals, Any] = {}
    readable, writable = os.pipe()
    os.set_blocking(writable, False)

    def handle(signum: int, _frame: FrameType | None) -> None:
        signal.signal(signum, previous[signal.Signals(signum)])

    def watch() -> None:
        while (got := os.read(readable, 1)) and got != _QUIT:
            if got[0] in _SIGNALS:
                stop.set()
                if then is not None:
                    then()
                return

    previous.update({s: signal.signal(s, handle) for s in _SIGNALS})
    wakeup = signal.set_wakeup_fd(writable, warn_on_full_buffer=False)
    watcher = threading.Thread(target=watch, name="cps-signals", daemon=True)
    watcher.start()
    try:
        yield stop
    finally:
        signal.set_wakeup_fd(wakeup)
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        os.write(writable, _QUIT)
        watcher.join()
        os.close(readable)
        os.close(writable)


def stop_when_input_ends(stop: threading.Event) -> None:
    """Set `stop` once standard input reaches its end (or cannot be read)."""
    def watch() -> None:
        with contextlib.suppress(OSError):
            while os.read(0, 4096):
                pass  # nothing is meant to be written; whatever is, is ignored
        stop.set()

    threading.Thread(target=watch, name="cps-stdin", daemon=True).start()
