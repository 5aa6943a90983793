"""Ctrl-C and SIGTERM stop a command cleanly (cli/signals.py), however busy its main thread is with
the very event the signal sets: a real process, a real signal."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

from tests.conftest import REPOSITORY

# The main thread waits on the stop event in a tight loop, so that a signal nearly always comes
# while it holds the event's lock: where setting the event from the handler hung the process.
CHILD = """
from cps.cli.signals import stop_on_signals
with stop_on_signals(then=lambda: print("then", flush=True)) as stop:
    print("ready", flush=True)
    while not stop.wait(0):
        pass
print("stopped", flush=True)
"""
ROUNDS = 20
DEADLINE_SECONDS = 30.0


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_a_main_thread_busy_waiting_on_the_stop_event(signum: int) -> None:
    for _ in range(ROUNDS):
        child = subprocess.Popen([sys.executable, "-c", CHILD], stdout=subprocess.PIPE,
                                 text=True, cwd=REPOSITORY / "src")
        assert child.stdout is not None
        assert child.stdout.readline() == "ready\n"
        child.send_signal(signum)
        try:
            out, _ = child.communicate(timeout=DEADLINE_SECONDS)
        except subprocess.TimeoutExpired:
            child.kill()
            child.communicate()
            pytest.fail(f"the process did not stop within {DEADLINE_SECONDS} s of {signum!r}")
        assert (child.returncode, out) == (0, "then\nstopped\n")
