"""The aiosmtpd handler shared by the SMTP and LMTP listeners: the replies a sender sees.

RCPT is answered from the store: 250 if a database has a live mailbox with that address, 550 5.1.1 if
none has. After DATA the message is routed and parsed (`Deliverer`) with its trace (sender, client,
protocol: `trace.py`), then handed to its database's group commit (`group.py`), and the reply
depends on what committed:

* SMTP has one reply for the whole message: 250 only if every database's transaction committed;
  554 if the message itself is refused (an empty one, or one that cannot be parsed); otherwise 451,
  so the sender retries. If one database committed and another failed, the retry delivers a second
  copy to the first: SMTP cannot say "done for some recipients".
* LMTP (RFC 2033) replies once per accepted recipient, in RCPT order, so each recipient's reply is
  exactly what became of the message in that recipient's database.

Where the store work runs: a recipient's lookup (one indexed read, which a WAL database never makes
wait for a writer) and a message of up to INLINE_BYTES are done on the event loop, because handing
each to a worker thread and back cost more than the work itself; a larger message is parsed on a
worker thread, so that other sessions are not held up meanwhile. Nothing waits for a commit on the
event loop or on a worker. No handler hook raises: aiosmtpd would turn an exception into a 500
reply, a permanent failure for a message that may only need a retry.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator, Sequence
from concurrent.futures import Executor, Future
from contextlib import contextmanager
from typing import Any

from aiosmtpd.lmtp import LMTP

from ...errors import InvalidName
from .delivery import NOT_DURABLE, UNKNOWN, Deliverer, Durable, Outcome
from .trace import Trace

logger = logging.getLogger(__name__)

MAX_REASON_CHARS = 200
INLINE_BYTES = 256 << 10  # messages parsed on the event loop: see the module docstring


class IntakeHandler:
    def __init__(self, deliverer: Deliverer, executor: Executor,
                 durable: Durable | None = None) -> None:
        self.deliverer = deliverer
        self.executor = executor
        self.durable = durable
        self._running = 0
        self._idle = asyncio.Event()
        self._idle.set()

    async def drained(self) -> None:
        """Return once no store work is under way (replies for finished work have been queued)."""
        await self._idle.wait()

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        try:
            route = self.deliverer.route(address)
        except InvalidName:
            return f"553 5.1.3 <{_printable(address)}>: not a valid mailbox address"
        except Exception as error:  # reply, never raise: see the module docstring
            logger.warning("recipient lookup failed address=%s", address, exc_info=True)
            return f"451 4.3.0 cannot look up the mailbox: {_printable(str(error))}"
        if route is None:
            return f"550 5.1.1 <{_printable(address)}>: no such mailbox here"
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(options)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        lmtp = isinstance(server, LMTP)
        recipients: list[str] = list(envelope.rcpt_tos)
        raw: bytes = envelope.original_content or b""
        trace = Trace(
            sender=envelope.mail_from or "", helo=session.host_name or "",
            peer=session.peer[0] if isinstance(session.peer, tuple) else "",
            protocol=_protocol(lmtp, session), hostname=server.hostname)
        with self._busy():
            try:
                outcomes = await self._delivered(raw, recipients, trace, lmtp)
            except Exception as error:  # reply, never raise: see the module docstring
                logger.warning("delivery failed recipients=%s", ",".join(recipients),
                               exc_info=True)
                failed = Outcome(False, f"mail database error: {error}")
                outcomes = {address: failed for address in recipients}
            if self.durable is not None:
                outcomes = await self._until_durable(self.durable, outcomes, trace)
        if lmtp:
            return "\r\n".join(_reply(outcomes[address], address) for address in recipients)
        return _smtp_reply([outcomes[address] for address in recipients])

    async def _delivered(self, raw: bytes, recipients: list[str], trace: Trace, lmtp: bool
                         ) -> dict[str, Outcome]:
        """The outcome per recipient once the groups the message joined have committed, awaited
        here, so that no worker thread waits for a commit."""
        def deliver() -> dict[str, Future[Outcome]]:
            return self.deliverer.deliver(raw, recipients, trace, allow_unknown=lmtp)

        if len(raw) <= INLINE_BYTES:
            futures = deliver()
        else:
            futures = await asyncio.get_running_loop().run_in_executor(self.executor, deliver)
        return {address: await asyncio.wrap_future(future) for address, future in futures.items()}

    async def _until_durable(self, durable: Durable, outcomes: dict[str, Outcome], trace: Trace
                             ) -> dict[str, Outcome]:
        """The outcomes once each committed transaction is durable in its repository; those that
        did not become so in time NOT_DURABLE. Waited for here, on the event loop, not on a worker
        thread: a worker waiting would hold up every other delivery for a sync interval."""
        commits = {o.database: o.committed_ms for o in outcomes.values()
                   if o.committed and o.database is not None}
        waits = await asyncio.gather(*(durable(path, ms) for path, ms in commits.items()))
        late = {path for path, done in zip(commits, waits, strict=True) if not done}
        for path in late:
            logger.warning("delivery not acknowledged: not durable in the repository in time "
                           "database=%s id=%s", path, trace.id)
        return {address: NOT_DURABLE if outcome.database in late else outcome
                for address, outcome in outcomes.items()}

    @contextmanager
    def _busy(self) -> Iterator[None]:
        """Store work under way, which `drained` waits for: only work that awaits (a delivery,
        from DATA to its replies) needs it; work done on the event loop without awaiting, as a
        recipient's lookup, is over before `drained` can look."""
        self._running += 1
        self._idle.clear()
        try:
            yield
        finally:
            self._running -= 1
            if not self._running:
                self._idle.set()


def _protocol(lmtp: bool, session: Any) -> str:
    """The protocol's name for Received's "with" clause (RFC 3848): LMTP, SMTP (HELO) or ESMTP,
    with an "S" once STARTTLS is in effect."""
    name = "LMTP" if lmtp else "ESMTP" if session.extended_smtp else "SMTP"
    return name + ("S" if session.ssl is not None else "")


def _smtp_reply(outcomes: Sequence[Outcome]) -> str:
    failures = [outcome for outcome in outcomes if not outcome.committed]
    if not failures:
        return "250 2.0.0 OK: delivered"
    if len(failures) == len(outcomes) and all(outcome.permanent for outcome in failures):
        return _reply(failures[0])
    # Some part committed or may succeed later: only a retry can complete the rest.
    first = next((outcome for outcome in failures if not outcome.permanent), failures[0])
    return _reply(Outcome(False, first.reason))


def _reply(outcome: Outcome, address: str = "") -> str:
    about = f"<{_printable(address)}> " if address else ""
    if outcome.committed:
        return f"250 2.0.0 {about}delivered"
    if outcome is UNKNOWN:
        return f"550 5.1.1 {about}no such mailbox here"
    if outcome.permanent:
        return f"554 5.6.0 {about}message refused: {_printable(outcome.reason)}"
    return f"451 4.3.0 {about}not stored, try again later: {_printable(outcome.reason)}"


def _printable(text: str) -> str:
    """`text` made safe for one reply line: printable ASCII, single spaces, bounded length."""
    cleaned = "".join(c if " " <= c <= "~" else " " for c in text)
    return " ".join(cleaned.split())[:MAX_REASON_CHARS]
