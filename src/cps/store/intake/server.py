"""`IntakeServer`: the SMTP and LMTP listeners, their worker threads, and their orderly stop.

The listeners run on one asyncio event loop; large messages are parsed on a small thread pool
(`handler`), and each database's writes run on its group committer's thread (`group`). Stopping closes
the listeners, waits for store work under way so its replies still go out, closes the remaining
sessions and then the database connections. A session cut off in the middle of DATA has received no
reply, so its sender retries.

The size limit counts the bytes as transmitted, and is the only limit on a line: RFC 5321 allows
1000 octets, but real mail breaks that, import stores lines of any length, and so does delivery. A
line longer than the size limit is a message over it, refused with 552 like any other.

With a TLS context, both listeners offer STARTTLS; the banner reads "<host> ESMTP CPS" (or LMTP).
"""

from __future__ import annotations

import asyncio
import re
import signal
import socket
import ssl
import threading
import weakref
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any, AnyStr

from aiosmtpd.lmtp import LMTP
from aiosmtpd.smtp import SMTP

from ...config import DEFAULT_GROUP, Endpoint, GroupLimits
from ...errors import UsageError
from ..connection import BUSY_TIMEOUT_SECONDS
from .delivery import Deliverer, Durable
from .handler import IntakeHandler

DEFAULT_MAX_SIZE = 32 * 1024 * 1024
WORKER_THREADS = 4
# aiosmtpd's replies to a line longer than its line limit, and to too much data.
_LINE_TOO_LONG = "500 Line too long"
_TOO_MUCH_DATA = "552 Error: Too much mail data"


class _IntakeSMTP(SMTP):
    """aiosmtpd's SMTP session with the CPS banner, lines as long as the size limit allows, and
    plain addresses read without the RFC 5322 parser."""

    banner = "ESMTP CPS"

    def __init__(self, handler: IntakeHandler, *, data_size_limit: int, **options: Any) -> None:
        # aiosmtpd reads with this limit; a line may hold a whole message, dot-stuffed, with CRLF
        self.line_length_limit = data_size_limit + len(b".\r\n")
        super().__init__(handler, data_size_limit=data_size_limit, ident=self.banner, **options)

    def _getaddr(self, arg: str) -> tuple[str | None, str | None]:
        """The address of MAIL FROM or RCPT TO and what follows it. aiosmtpd parses every address
        with the email package's header parser, the costliest step of a MAIL or RCPT; an address
        of dot-atoms in angle brackets, as MTAs send them, parses to itself, so it is taken as it
        is, and anything else goes to aiosmtpd."""
        plain = _PLAIN_ADDRESS.match(arg)
        if plain is None or (self.local_part_limit and
                             len(plain["local"]) > self.local_part_limit):
            return super()._getaddr(arg)
        return plain["address"], arg[plain.end():]

    async def push(self, status: AnyStr) -> None:
        await super().push(_as_size_refusal(status) if isinstance(status, str) else status)


class _IntakeLMTP(_IntakeSMTP, LMTP):
    """Also gives one reply per recipient when aiosmtpd itself refuses a message after DATA (too
    big): an LMTP client waits for one reply per recipient (RFC 2033 4.2)."""

    banner = "LMTP CPS"
    _replies_due = 0

    async def push(self, status: AnyStr) -> None:
        due, self._replies_due = self._replies_due, 0
        if isinstance(status, str) and status.startswith("354") and self.envelope is not None:
            self._replies_due = len(self.envelope.rcpt_tos)
        elif isinstance(status, str) and due > 1 and "\r\n" not in status:
            await super().push("\r\n".join([_as_size_refusal(status)] * due))
            return
        await super().push(status)


_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_PLAIN_ADDRESS = re.compile(
    rf"\s*<(?P<address>(?P<local>{_ATOM}(?:\.{_ATOM})*)@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*)>(?!\s*\()\s*")


def _as_size_refusal(status: str) -> str:
    """A line longer than the line limit makes the message longer than the size limit: say so."""
    return _TOO_MUCH_DATA if status.startswith(_LINE_TOO_LONG) else status


PROTOCOLS: dict[str, type[_IntakeSMTP]] = {"smtp": _IntakeSMTP, "lmtp": _IntakeLMTP}


DEFAULT_SMTP = Endpoint("127.0.0.1", 2525)
DEFAULT_LMTP = Endpoint("127.0.0.1", 2424)


class IntakeServer:
    """Listeners that deliver mail into `databases`. Start and stop it on a running event loop;
    while it runs, `listeners` holds the (protocol, bound address) pairs."""

    def __init__(
        self,
        databases: Sequence[str | Path],
        *,
        smtp: Endpoint | None = DEFAULT_SMTP,
        lmtp: Endpoint | None = DEFAULT_LMTP,
        max_size: int = DEFAULT_MAX_SIZE,
        busy_timeout: float = BUSY_TIMEOUT_SECONDS,
        tls: ssl.SSLContext | None = None,
        durable: Durable | None = None,
        group: GroupLimits = DEFAULT_GROUP,
    ) -> None:
        if not databases:
            raise UsageError("no mail database to deliver to", hint="Name at least one database.")
        if smtp is None and lmtp is None:
            raise UsageError("no listener", hint="Listen for SMTP, LMTP or both.")
        self.endpoints = {"smtp": smtp, "lmtp": lmtp}
        self.max_size = max_size
        self.tls = tls
        self.deliverer = Deliverer([Path(p) for p in databases], busy_timeout, group)
        self.durable = durable
        self.listeners: list[tuple[str, Endpoint]] = []
        self._servers: list[asyncio.Server] = []
        self._sessions: weakref.WeakSet[SMTP] = weakref.WeakSet()
        self._executor: ThreadPoolExecutor | None = None
        self._handler: IntakeHandler | None = None

    async def start(self) -> None:
        """Check the databases and start listening; on failure nothing is left running."""
        loop = asyncio.get_running_loop()
        self._executor = ThreadPoolExecutor(WORKER_THREADS, thread_name_prefix="cps-intake")
        self._handler = IntakeHandler(self.deliverer, self._executor, self.durable)
        try:
            await loop.run_in_executor(self._executor, self.deliverer.start)
            hostname = socket.gethostname()
            for name, endpoint in self.endpoints.items():
                if endpoint is not None:
                    await self._listen(name, endpoint, hostname)
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        """Stop listening, let store work under way finish and reply, then close the sessions
        and the database connections."""
        for server in self._servers:
            server.close()
        if self._handler is not None:
            await self._handler.drained()
        # no await between draining and closing: no new store work can start in between
        for session in list(self._sessions):
            if session.transport is not None:
                session.transport.close()
        for server in self._servers:
            await server.wait_closed()  # since Python 3.12 this waits for the sessions to close
        self._servers.clear()
        self.listeners.clear()
        if self._executor is not None:
            await asyncio.to_thread(self._executor.shutdown, True)
            self._executor = None
        self.deliverer.close()

    async def _listen(self, name: str, endpoint: Endpoint, hostname: str) -> None:
        loop = asyncio.get_running_loop()
        protocol = PROTOCOLS[name]

        def new_session() -> SMTP:
            assert self._handler is not None
            session = protocol(
                self._handler, data_size_limit=self.max_size, enable_SMTPUTF8=True,
                hostname=hostname, tls_context=self.tls, loop=loop)
            self._sessions.add(session)
            return session

        try:
            server = await loop.create_server(new_session, endpoint.host, endpoint.port)
        except OSError as error:
            raise UsageError(
                f"cannot listen for {name} on {endpoint}: {error.strerror or error}",
                hint="Choose another address, or stop the program that is using this one.",
            ) from error
        self._servers.append(server)
        for sock in server.sockets:
            host, port = sock.getsockname()[:2]
            self.listeners.append((name, Endpoint(host, port)))


def serve(server: IntakeServer, on_listening: Callable[[str, Endpoint], None]) -> None:
    """Run `server` until SIGTERM or SIGINT, then stop it cleanly. `on_listening` is called once
    per bound listener when the server is ready."""
    asyncio.run(_serve_until_signal(server, on_listening))


async def _serve_until_signal(
    server: IntakeServer, on_listening: Callable[[str, Endpoint], None]
) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await server.start()
    try:
        for name, endpoint in server.listeners:
            on_listening(name, endpoint)
        await stop.wait()
    finally:
        await server.stop()


@contextmanager
def running(server: IntakeServer) -> Iterator[IntakeServer]:
    """Run `server` on its own event loop in a background thread for the life of the block."""
    started = threading.Event()
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    failure: list[BaseException] = []

    async def main() -> None:
        try:
            await server.start()
        except BaseException as error:
            failure.append(error)
            return
        finally:
            started.set()
        try:
            await stop.wait()
        finally:
            await server.stop()

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    started.wait()
    if failure:
        thread.join()
        loop.close()
        raise failure[0]
    try:
        yield server
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join()
        loop.close()
