"""Group commit: deliveries into one mail database that arrive together share one transaction.

Each database served has one `GroupCommitter`, a thread with its own write connection. A message is
routed and parsed (outside any lock, `handler.py` says on which thread) and handed to the committer,
which takes every delivery waiting, writes them in one transaction with `MailDatabase.deliver_group`
(each message in its own savepoint, so one that fails is rolled back alone and the others commit),
commits once (one fsync) and only then resolves each delivery's future; the caller replies 250 from
there, or, with zero-loss intake, once the capture of that transaction is durable.

How a group forms, and what bounds it:

* When the committer is idle and no other delivery is being parsed, a delivery is committed at
  once, alone: a single client sees no added latency when nothing else is arriving.
* A group is what queued while the previous commit ran, and deliveries already received and being
  parsed when the committer starts the next group (`reserve`): it waits for
  those up to `max_wait`, never for mail not yet received.
* A group holds at most `max_messages` messages and `max_bytes` bytes (a single larger message is a
  group of its own); what does not fit waits for the next one.

A group is one transaction, so a restore to a point in time (`cps restore --at`, `--txn`) lands on
a group's boundary: the deliveries of one group are all in a restored database, or none is, and
none of them had been answered before that transaction committed. A failure of the transaction
itself (the write lock not granted within the busy timeout, the disk full at commit) fails every
delivery of the group, each with its own reply to retry.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass

from ...config import GroupLimits
from ..database import GroupItem, MailDatabase
from ..models import Delivery

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class _Waiting:
    item: GroupItem
    future: Future[list[Delivery]]


class GroupCommitter:
    """Commits the deliveries handed to it into `database`, in groups, on a thread of its own;
    `close` commits what is still waiting, then stops the thread and closes the connection."""

    def __init__(self, database: MailDatabase, limits: GroupLimits) -> None:
        self.database = database
        self.limits = limits
        self._condition = threading.Condition()
        self._waiting: deque[_Waiting] = deque()
        self._parsing = 0  # deliveries reserved and not yet submitted
        self._uncommitted = 0  # deliveries submitted whose group has not finished
        self._closing = False
        self._thread = threading.Thread(
            target=self._run, name=f"cps-commit-{database.path.name}", daemon=True)
        self._thread.start()

    @contextmanager
    def reserve(self) -> Iterator[Callable[[GroupItem], Future[list[Delivery]]]]:
        """A delivery on its way (being parsed), which the group being formed may wait for.
        Yields the function that hands the delivery over, once: its future has what the delivery
        became once its group's transaction committed, or the exception that kept it from being
        stored. Leaving the block without handing it over ends the reservation."""
        with self._condition:
            self._parsing += 1
        reserved = [True]

        def submit(item: GroupItem) -> Future[list[Delivery]]:
            waiting = _Waiting(item, Future())
            with self._condition:
                if self._closing:
                    raise RuntimeError("the intake is stopping")
                # in one step, so that the committer never waits for a delivery already queued
                self._parsing -= 1
                reserved.clear()
                self._waiting.append(waiting)
                self._uncommitted += 1
                self._condition.notify_all()
            return waiting.future

        try:
            yield submit
        finally:
            if reserved:
                with self._condition:
                    self._parsing -= 1
                    self._condition.notify_all()

    @property
    def uncommitted(self) -> int:
        """How many deliveries were handed over and are not yet answered: waiting for a group,
        or in the commit under way."""
        with self._condition:
            return self._uncommitted

    def close(self) -> None:
        with self._condition:
            self._closing = True
            self._condition.notify_all()
        self._thread.join()
        self.database.close()

    def _run(self) -> None:
        while (group := self._next_group()) is not None:
            self._commit(group)
            with self._condition:
                self._uncommitted -= len(group)

    def _next_group(self) -> list[_Waiting] | None:
        """The next group once there is one (None once closing and nothing waits)."""
        with self._condition:
            while not self._waiting and not self._closing:
                self._condition.wait()
            if not self._waiting:
                return None
            deadline = time.monotonic() + self.limits.max_wait
            while (self._parsing and len(self._waiting) < self.limits.max_messages
                   and (left := deadline - time.monotonic()) > 0):
                self._condition.wait(left)
            return self._take()

    def _take(self) -> list[_Waiting]:
        group = [self._waiting.popleft()]
        size = len(group[0].item.raw)
        while self._waiting and len(group) < self.limits.max_messages:
            size += len(self._waiting[0].item.raw)
            if size > self.limits.max_bytes:
                break
            group.append(self._waiting.popleft())
        return group

    def _commit(self, group: list[_Waiting]) -> None:
        try:
            results = self.database.deliver_group([waiting.item for waiting in group])
        except Exception as error:  # the transaction failed: so did every delivery in it
            for waiting in group:
                waiting.future.set_exception(error)
            return
        logger.debug("group committed messages=%d database=%s", len(group), self.database.path)
        for waiting, result in zip(group, results, strict=True):
            if isinstance(result, Exception):
                waiting.future.set_exception(result)
            else:
                waiting.future.set_result(result)
