"""Progress of long operations: a bar on stderr when it is a terminal (rich), nothing otherwise,
so results on stdout stay clean whether they go to a terminal, a file or a pipe."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

Reporter = Callable[[str, int, int], None]
# Told (bytes done, bytes in all, messages done).
MailReporter = Callable[[int, int, int], None]


def shows_progress(*, enabled: bool) -> bool:
    """Whether `progress_reporter(enabled=...)` draws: a caller can skip work that only feeds it
    (counting what is to be done)."""
    return enabled and sys.stderr.isatty()


@contextmanager
def progress_reporter(*, enabled: bool) -> Iterator[Reporter]:
    """Yield a reporter of (stage, done, total); it draws only when stderr is a terminal."""
    if not shows_progress(enabled=enabled):
        yield lambda _stage, _done, _total: None
        return
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                  TimeRemainingColumn(), console=Console(stderr=True), transient=True) as bar:
        tasks: dict[str, TaskID] = {}

        def report(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], completed=done, total=total)

        yield report


@contextmanager
def mail_progress(stage: str) -> Iterator[MailReporter]:
    """A bar labelled `stage` on stderr for moving mail, with its rate in messages/s and MB/s
    (decimal megabytes); draws only when stderr is a terminal."""
    if not shows_progress(enabled=True):
        yield lambda _done, _total, _messages: None
        return
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                  TextColumn("{task.fields[messages]:>9,.0f} msg/s"), TransferSpeedColumn(),
                  TimeRemainingColumn(), console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(stage, total=None, messages=0.0)

        def report(done: int, total: int, messages: int) -> None:
            elapsed = bar.tasks[task].elapsed
            rate = messages / elapsed if elapsed else 0.0
            bar.update(task, completed=done, total=total, messages=rate)

        yield report
