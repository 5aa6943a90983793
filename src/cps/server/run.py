"""Running the server: the service started, the HTTP API served, both stopped on SIGTERM.

The service starts first (databases and repositories checked, protectors, intake), so that a
wrong configuration is a clear error before anything listens. The API then listens (uvicorn, on
the service's event loop); when it is up, one JSON line on stdout says where everything listens,
and systemd, when it started the server as a Type=notify unit, is told READY=1. SIGTERM or SIGINT,
whenever it comes (while the service starts too), stops the API, then the service (deliveries under
way answered, protectors stopped cleanly), and the process exits 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import sys
from collections.abc import Callable, Iterator

import uvicorn

from ..config import Config, Endpoint
from ..errors import UsageError
from .api import build_app
from .service import Service

logger = logging.getLogger(__name__)


def serve(config: Config, on_ready: Callable[[dict[str, object]], None] | None = None) -> None:
    asyncio.run(_serve(config, on_ready or _print_ready))


async def _serve(config: Config, on_ready: Callable[[dict[str, object]], None]) -> None:
    logging.getLogger("mail.log").setLevel(logging.WARNING)  # aiosmtpd: a line per connection
    stopping = _Stopping()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.request)
    service = Service(config)
    await service.start()
    try:
        if not stopping.requested:
            await _serve_api(config, service, stopping, on_ready)
    finally:
        await service.stop()
        logger.info("stopped")


async def _serve_api(config: Config, service: Service, stopping: _Stopping,
                     on_ready: Callable[[dict[str, object]], None]) -> None:
    sock = _bind(config.server.listen)
    settings = config.server
    server = _Server(uvicorn.Config(
        build_app(service), log_config=None, access_log=False, lifespan="off",
        ssl_certfile=str(settings.tls_cert) if settings.tls_cert else None,
        ssl_keyfile=str(settings.tls_key) if settings.tls_key else None))
    stopping.server = server
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started and not serving.done():
        await asyncio.sleep(0.01)
    if server.started:
        on_ready(_where(service, sock, settings.tls_cert is not None))
        _notify_systemd(b"READY=1")
    await serving


class _Stopping:
    """SIGTERM or SIGINT, seen on the event loop: before the API serves, it keeps the API from
    starting; while it serves, it stops it. Either way the service then stops."""

    def __init__(self) -> None:
        self.requested = False
        self.server: uvicorn.Server | None = None

    def request(self) -> None:
        self.requested = True
        if self.server is not None:
            self.server.should_exit = True


class _Server(uvicorn.Server):
    """uvicorn's server, with SIGTERM and SIGINT left to `_serve`: uvicorn's own handlers raise
    the signal again once it has shut down, which would end the process before the service stops."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _notify_systemd(state: bytes) -> None:
    """Tell systemd `state` (sd_notify), when it started this process with a NOTIFY_SOCKET."""
    address = os.environ.get("NOTIFY_SOCKET", "")
    if not address:
        return
    if address.startswith("@"):  # an abstract socket
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.sendto(state, address)
    except OSError as error:
        logger.warning("cannot notify systemd at %s: %s", os.environ["NOTIFY_SOCKET"],
                       error.strerror or error)


def _bind(endpoint: Endpoint) -> socket.socket:
    family = socket.AF_INET6 if ":" in endpoint.host else socket.AF_INET
    # With the protocol named, asyncio sets TCP_NODELAY on each connection accepted (it does only
    # for IPPROTO_TCP sockets): without it, a reply written in two parts, as uvicorn writes
    # headers and body, waits for the client's delayed ACK, 40 ms on Linux.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((endpoint.host, endpoint.port))
    except OSError as error:
        sock.close()
        raise UsageError(f"cannot listen for the API on {endpoint}: {error.strerror or error}",
                         hint="Choose another [server] listen address, or stop the program "
                              "using this one.") from error
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def _where(service: Service, sock: socket.socket, tls: bool) -> dict[str, object]:
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    where: dict[str, object] = {"event": "ready", "api": f"{'https' if tls else 'http'}://"
                                f"{shown}:{port}", "databases": list(service.children)}
    for name, endpoint in service.intake.listeners if service.intake else []:
        where[name] = str(endpoint)
    logger.info("ready", extra={"fields": where})
    return where


def _print_ready(where: dict[str, object]) -> None:
    sys.stdout.write(json.dumps(where) + "\n")
    sys.stdout.flush()
