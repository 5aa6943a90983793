"""The store half of intake: finding which mail database holds a recipient, and delivering.

This runs on the event loop's thread for recipients and small messages, and on worker threads for
large ones (`handler.py` says why). Each thread keeps its own `MailDatabase` connection to each
database for looking up recipients (SQLite connections are not shared between threads), with the
busy timeout the server was started with. Writing is the work of one `GroupCommitter` per database
(`group.py`): a message is routed, parsed and handed over, and the delivery's outcome is a future
that resolves once the group it joined committed, so nothing here waits for a commit. A message for
recipients in several databases is one delivery per database; the caller learns, per database,
whether it committed. What each database stores is the trace header fields for its mailboxes
followed by the bytes received (`trace.py`).

Parsing depends on the bytes alone, so a message that cannot be parsed is refused for good: a retry
would fail the same way. Store failures (a busy or full database) may pass, and are temporary.

A recipient belongs to the first database, in the order given, that has a live mailbox with that
address.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path

from ...config import DEFAULT_GROUP, GroupLimits
from ...errors import CPSError, InvalidMessage, InvalidName, NotFound, StoreBusy
from ..database import GroupItem, MailDatabase, check_message, parse_message
from ..messages import ParsedMessage
from ..models import Delivery
from ..parse import MAX_MIME_DEPTH, TOO_DEEP
from .group import GroupCommitter
from .trace import Trace

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of a message for one recipient: committed, or why not. A `permanent` failure
    fails again on retry (an empty message, an unknown mailbox); the others may not."""

    committed: bool
    reason: str = ""
    permanent: bool = False
    database: Path | None = None  # committed: into this database ...
    committed_ms: int = 0  # ... at this time (for the wait until it is durable)


UNKNOWN = Outcome(False, "no such mailbox", permanent=True)
# Stored, but not made durable in the repository in time: the sender tries again (and the message
# may then be stored twice, never lost).
NOT_DURABLE = Outcome(False, "not yet protected in the backup repository")
# Whether a delivery committed at a time (ms) into the database at a path is durable in its
# repository: waits on the event loop until it is, or says it did not become so in time.
Durable = Callable[[Path, int], Awaitable[bool]]


class Deliverer:
    """Routes addresses to mail databases and delivers raw messages into them."""

    def __init__(self, databases: Sequence[Path], busy_timeout: float,
                 limits: GroupLimits = DEFAULT_GROUP) -> None:
        self.databases = tuple(databases)
        self.busy_timeout = busy_timeout
        self.limits = limits
        self._local = threading.local()
        self._opened: list[MailDatabase] = []
        self._opened_lock = threading.Lock()
        self.committers: list[GroupCommitter] = []  # one per database, in order, once started

    def start(self) -> None:
        """Open each database and start its committer, so a wrong path fails at start rather
        than at the first mail."""
        for path in self.databases:
            database = MailDatabase.open(path, busy_timeout=self.busy_timeout)
            self.committers.append(GroupCommitter(database, self.limits))

    def close(self) -> None:
        """Commit what is waiting, stop the committers and close every connection any worker
        opened; call once the workers have stopped."""
        for committer in self.committers:
            committer.close()
        self.committers.clear()
        with self._opened_lock:
            for database in self._opened:
                database.close()
            self._opened.clear()

    def route(self, address: str) -> tuple[int, str] | None:
        """The index of the database with a live mailbox `address` and the mailbox's canonical
        address, or None if no database has one. Raises InvalidName for an address the store
        cannot hold."""
        for index in range(len(self.databases)):
            try:
                mailbox = self._database(index).mailbox(address)
            except NotFound:
                continue
            return index, mailbox.address
        return None

    def deliver(
        self, raw: bytes, recipients: Sequence[str], trace: Trace, *, allow_unknown: bool
    ) -> dict[str, Future[Outcome]]:
        """Deliver `raw` once to each distinct mailbox among `recipients`, one delivery per
        database, and say what becomes of it for each recipient as given: a future per recipient,
        done once that database's group committed. A recipient no database holds any more is
        UNKNOWN; unless `allow_unknown`, that stops the whole delivery before anything is stored,
        so that a sender's retry does not duplicate the message."""
        try:
            check_message(raw)  # before the trace fields make an empty message look like one
        except InvalidMessage as error:
            logger.warning("delivery refused: %s id=%s", error.message, trace.id)
            return _each(recipients, Outcome(False, error.message, permanent=True))
        groups: dict[int, dict[str, None]] = {}
        routes: dict[str, tuple[int, str] | None] = {}
        for address in recipients:
            routes[address] = route = self._route_quietly(address)
            if route is not None:
                groups.setdefault(route[0], {})[route[1]] = None
        if not allow_unknown and None in routes.values():
            return _each(recipients, Outcome(False, "a mailbox disappeared during the transaction"))
        outcomes = {index: self._deliver_to(index, trace, raw, list(g)) for index, g in groups.items()}
        return {
            address: _done(UNKNOWN) if route is None else outcomes[route[0]]
            for address, route in routes.items()
        }

    def _route_quietly(self, address: str) -> tuple[int, str] | None:
        try:
            return self.route(address)
        except InvalidName:
            return None

    def _deliver_to(self, index: int, trace: Trace, received: bytes, mailboxes: list[str]
                    ) -> Future[Outcome]:
        committer = self.committers[index]
        with committer.reserve() as submit:
            raw = trace.header_block(mailboxes) + received
            parsed = _parsed(raw, trace.id)
            if isinstance(parsed, Outcome):
                return _done(parsed)
            try:
                stored = submit(GroupItem(raw, tuple(mailboxes), parsed.envelope))
            except RuntimeError as error:
                return _done(Outcome(False, str(error)))
        outcome: Future[Outcome] = Future()
        stored.add_done_callback(
            lambda done: outcome.set_result(self._outcome(done, committer, len(raw), trace.id)))
        return outcome

    def _outcome(self, stored: Future[list[Delivery]], committer: GroupCommitter, size: int,
                 trace_id: str) -> Outcome:
        """What became of a delivery whose group is done, logged."""
        path = committer.database.path
        try:
            deliveries = stored.result()
        except StoreBusy:
            logger.warning("delivery failed: database busy database=%s timeout=%s id=%s",
                           path, self.busy_timeout, trace_id)
            return Outcome(False, "mail database busy")
        except CPSError as error:
            logger.warning("delivery failed: %s database=%s id=%s", error.message, path, trace_id)
            return Outcome(False, error.message)
        except Exception as error:  # a failed delivery must become a reply, never a crash
            logger.warning("delivery failed database=%s id=%s", path, trace_id, exc_info=error)
            return Outcome(False, f"mail database error: {error}")
        logger.debug(
            "delivered size=%d database=%s id=%s messages=%s", size, path, trace_id,
            ",".join(f"{d.address}:{d.message_id}" for d in deliveries))
        return Outcome(True, database=path, committed_ms=int(time.time() * 1000))

    def _database(self, index: int) -> MailDatabase:
        connections: dict[int, MailDatabase] | None = getattr(self._local, "connections", None)
        if connections is None:
            connections = self._local.connections = {}
        database = connections.get(index)
        if database is None:
            database = MailDatabase.open(self.databases[index], busy_timeout=self.busy_timeout)
            connections[index] = database
            with self._opened_lock:
                self._opened.append(database)
        return database


def _done(outcome: Outcome) -> Future[Outcome]:
    future: Future[Outcome] = Future()
    future.set_result(outcome)
    return future


def _each(recipients: Sequence[str], outcome: Outcome) -> dict[str, Future[Outcome]]:
    done = _done(outcome)
    return {address: done for address in recipients}


def _parsed(raw: bytes, trace_id: str) -> ParsedMessage | Outcome:
    """The message parsed for storing, or why it cannot be stored."""
    try:
        parsed = parse_message(raw)
    except MemoryError:
        return Outcome(False, "out of memory parsing the message")
    except Exception as error:  # a parser bug: the same bytes would fail again on every retry
        logger.warning("delivery refused: cannot parse id=%s", trace_id, exc_info=True)
        return Outcome(False, f"cannot be parsed: {type(error).__name__}", permanent=True)
    if TOO_DEEP in parsed.envelope.defects:
        logger.warning("stored without indexing the parts nested deeper than %d levels id=%s",
                       MAX_MIME_DEPTH, trace_id)
    return parsed
