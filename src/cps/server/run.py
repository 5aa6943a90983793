"""Running the server: the service started, the HTTP API served, both stopped on SIGTERM.

The service starts first (databases and repositories checked, protectors, intake), so that a
wrong configuration is a clear error before anything listens. The API then listens (uvicorn, on
the service's event loop); when it is up, one JSON line on stdout says where everything listens,
and systemd, when it started the server as a Type=notify unit, is told READY=1. SIGTERM or SIGINT,
whenever it comes, stops the API, then the service (deliveries under way answered, protectors
stopped cleanly), and the process exits 0.
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
import threading
from collections.abc import Callable, Iterator
from types import FrameType

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
    stop = _StopSignals()
    with stop.caught():
        service = Service(config)
        await service.start()
        try:
            if not stop.requested:
                await _serve_api(config, service, stop, on_ready)
        finally:
            await service.stop()
            logger.info("stopped")


async def _serve_api(config: Config, service: Service, stop: _StopSignals,
                     on_ready: Callable[[dict[str, object]], None]) -> None:
    sock = _bind(config.server.listen)
    settings = config.server
    server = uvicorn.Server(uvicorn.Config(
        build_app(service), log_config=None, access_log=False, lifespan="off",
        ssl_certfile=str(settings.tls_cert) if settings.tls_cert else None,
        ssl_keyfile=str(settings.tls_key) if settings.tls_key else None))
    stop.server = server
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started and not serving.done():
        await asyncio.sleep(0.01)
    if server.started:
        on_ready(_where(service, sock, settings.tls_cert is not None))
        _notify_systemd(b"READY=1")
    await serving


class _StopSignals:
    """SIGTERM and SIGINT from before the service starts until it has stopped: each stops the API
    (or keeps it from starting), and none ends the process before the service has stopped its
    protectors. While uvicorn serves it takes them itself, and once it has stopped it raises each
    again, which ends here too."""

    def __init__(self) -> None:
        self.requested = False
        self.server: uvicorn.Server | None = None

    def __call__(self, _signum: int, _frame: FrameType | None) -> None:
        self.requested = True
        if self.server is not None:
            self.server.should_exit = True

    @contextlib.contextmanager
    def caught(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield  # only the main thread may handle signals: whoever runs this one stops it
            return
        previous = {s: signal.signal(s, self) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)


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
    sock = socket.socket(family, socket.SOCK_STREAM)
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
