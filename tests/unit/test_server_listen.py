"""The API's listening socket (src/cps/server/run.py)."""

from __future__ import annotations

import asyncio
import socket

from cps.config import Endpoint
from cps.server.run import _bind


def test_connections_accepted_for_the_api_have_nagle_off() -> None:
    """uvicorn writes a reply's headers and its body separately. With Nagle's algorithm on the
    accepted connection, the body waited for the client's delayed ACK, so every request on a
    kept-alive connection took about 40 ms however little the server had to do."""
    listening = _bind(Endpoint("127.0.0.1", 0))
    try:
        assert asyncio.run(_accepted_nodelay(listening))
    finally:
        listening.close()


async def _accepted_nodelay(listening: socket.socket) -> int:
    """TCP_NODELAY of a connection asyncio accepts on `listening`, as uvicorn serves it."""
    loop = asyncio.get_running_loop()
    seen: asyncio.Future[int] = loop.create_future()

    class Probe(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            accepted = transport.get_extra_info("socket")
            seen.set_result(accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            transport.close()

    server = await loop.create_server(Probe, sock=listening)
    async with server:
        _reader, writer = await asyncio.open_connection(*listening.getsockname()[:2])
        try:
            return await seen
        finally:
            writer.close()
            await writer.wait_closed()
