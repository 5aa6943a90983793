"""Points in time the API keeps open between requests.

Opening a point builds its image from the repository (docs/granular.md: about a second on a large
database), which a client paging through a folder would otherwise pay on every page. After a
request, a point stays open for `idle` seconds, at most `most` of them at once (the one idle the
longest is closed first when one more is opened).

A point is kept under the state it shows: its transaction, or for a time, that time (a time names
its transaction only once the log is read). `latest` and recovery points are resolved against the
repository on every request, so they see new transactions and points, and share the open point of
the transaction they name.

An open point holds the repository's reader lock, so a prune waits until the points are closed.
Its connection serves one thread at a time: a request holds the point's lock while it reads. A
point whose use failed for another reason than the request's own (a missing folder, a bad
selector) is closed, so that the next request opens it afresh. `close` (on server stop) closes
every point, and those still in use once their request ends.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field

from ..errors import InvalidName, NotFound, UsageError
from ..granular import Snapshot, open_snapshot
from ..repository import Repository
from ..restore import Target, resolve

logger = logging.getLogger(__name__)

IDLE_SECONDS = 60.0
MOST_OPEN = 4
# What a request gets wrong by itself: the point it read is as good as before.
REQUEST_ERRORS = (UsageError, NotFound, InvalidName)

Key = tuple[str, Target]  # a database, and the exact state of it


@dataclass(eq=False)
class _Entry:
    lock: threading.Lock = field(default_factory=threading.Lock)
    snapshot: Snapshot | None = None
    users: int = 0  # requests holding or waiting for it
    last_used: float = field(default_factory=time.monotonic)


class OpenPoints:
    def __init__(self, idle: float = IDLE_SECONDS, most: int = MOST_OPEN) -> None:
        self.idle = idle
        self.most = most
        self._entries: dict[Key, _Entry] = {}
        self._changed = threading.Condition()
        self._closed = False
        self._closer = threading.Thread(target=self._close_idle, name="cps-open-points",
                                        daemon=True)
        self._closer.start()

    @contextmanager
    def use(self, repo: Repository, db_id: str, *targets: Target) -> Iterator[list[Snapshot]]:
        """The snapshots of database `db_id` at `targets`, in that order, this thread's until the
        block ends. TargetNotCovered when the repository cannot show one of them."""
        keys = [(db_id, exact(repo, db_id, target)) for target in targets]
        with ExitStack() as held:
            # Always taken in the same order, so that two requests for the same two points
            # (a diff either way round) never wait for each other.
            snapshots = {key: held.enter_context(self._held(repo, key))
                         for key in sorted(set(keys), key=repr)}
            yield [snapshots[key] for key in keys]

    def close(self) -> None:
        """Close every point now, and those in use once their request ends."""
        with self._changed:
            self._closed = True
            idle = self._take(lambda entry: True)
            self._changed.notify_all()
        _close(idle)
        self._closer.join()

    @contextmanager
    def _held(self, repo: Repository, key: Key) -> Iterator[Snapshot]:
        entry = self._enter(key)
        try:
            with entry.lock:
                snapshot = entry.snapshot or open_snapshot(repo, *key)
                entry.snapshot = snapshot
                try:
                    with snapshot.reading():
                        yield snapshot
                except REQUEST_ERRORS:
                    raise
                except BaseException:
                    entry.snapshot = None
                    snapshot.close()
                    raise
        finally:
            self._leave(key, entry)

    def _enter(self, key: Key) -> _Entry:
        with self._changed:
            entry = self._entries.setdefault(key, _Entry())
            entry.users += 1
            return entry

    def _leave(self, key: Key, entry: _Entry) -> None:
        with self._changed:
            entry.users -= 1
            entry.last_used = time.monotonic()
            done = self._take(lambda e: e is entry and (self._closed or e.snapshot is None))
            done += self._beyond_most()
            self._changed.notify_all()
        _close(done)

    def _beyond_most(self) -> list[_Entry]:
        """The points idle the longest, as many as are open beyond `most`."""
        extra = sum(1 for e in self._entries.values() if e.snapshot is not None) - self.most
        idle = sorted((e for e in self._entries.values() if not e.users),
                      key=lambda e: e.last_used)[:max(0, extra)]
        return self._take(lambda e: e in idle)

    def _take(self, chosen: Callable[[_Entry], bool]) -> list[_Entry]:
        """Remove the unused entries `chosen` picks; the caller holds the lock and closes them."""
        taken = {key: e for key, e in self._entries.items() if not e.users and chosen(e)}
        for key in taken:
            del self._entries[key]
        return list(taken.values())

    def _close_idle(self) -> None:
        """The closer's thread: closes each point once it has been idle `idle` seconds."""
        while True:
            with self._changed:
                if self._closed:
                    return
                expired = self._expired(time.monotonic())
                if not expired:
                    self._changed.wait(self._until_next_expiry())
            _close(expired)

    def _expired(self, now: float) -> list[_Entry]:
        return self._take(lambda e: now - e.last_used >= self.idle)

    def _until_next_expiry(self) -> float | None:
        """Seconds until the next idle point expires; None while none is idle."""
        now = time.monotonic()
        waiting = [e.last_used + self.idle - now for e in self._entries.values() if not e.users]
        return max(0.0, min(waiting)) if waiting else None


def exact(repo: Repository, db_id: str, target: Target) -> Target:
    """The state `target` names now, as a target that always names it: its transaction, or for a
    time, the time itself. TargetNotCovered when the repository cannot show it."""
    _catalog, plan = resolve(repo, db_id, target)
    if plan.stop_time is None:
        return Target("txn", plan.last_txn)
    return Target("time", plan.stop_time)


def _close(entries: Iterable[_Entry]) -> None:
    for entry in entries:
        if entry.snapshot is None:
            continue
        try:
            entry.snapshot.close()
        except Exception:  # one point that cannot be closed must not keep the others open
            logger.exception("closing the point %s of %s failed", entry.snapshot.label,
                             entry.snapshot.db_id)
