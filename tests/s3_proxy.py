"""A real HTTP proxy in front of the test S3 server, for the network faults SeaweedFS cannot be told
to make: answering `503 Service Unavailable` to every request for a while, or answering each one
late; and to count the bytes a client uploads. Requests it lets through go to the server as they
came (the same method, path, headers and body, so their signatures still hold) and the server's
answers come back as they are.
"""

from __future__ import annotations

import http.client
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "proxy-connection", "upgrade"}
_UNAVAILABLE = (b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>ServiceUnavailable</Code>'
                b"<Message>the test proxy refuses requests for now</Message></Error>")


class Faults:
    """What the proxy does to requests now, changed by the test while it runs; and what it saw."""

    def __init__(self) -> None:
        self.unavailable = False  # answer 503 without asking the server
        self.delay = 0.0  # seconds each answer is held back
        self.refused = 0  # requests answered 503
        self.sent_bytes = 0  # of request bodies passed on to the server: the upload volume
        self.lock = threading.Lock()


@contextmanager
def s3_proxy(upstream: str) -> Iterator[tuple[str, Faults]]:
    """A proxy to the server at `upstream` on a free loopback port: its URL, and its faults."""
    faults = Faults()
    target = urlsplit(upstream)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass  # the test's output is not the place for a line per request

        def _any(self) -> None:
            body = self._body()
            with faults.lock:
                unavailable, delay = faults.unavailable, faults.delay
                faults.refused += unavailable
                faults.sent_bytes += 0 if unavailable else len(body)
            if delay:
                time.sleep(delay)  # the fault itself: a slow network, not a wait for a condition
            if unavailable:
                self._answer(503, [("Content-Type", "application/xml")], _UNAVAILABLE)
                return
            connection = http.client.HTTPConnection(target.hostname or "", target.port)
            try:
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
                connection.request(self.command, self.path, body=body, headers=headers)
                answer = connection.getresponse()
                content = answer.read()
                # A HEAD's length is the object's, and stays; otherwise it is the body's.
                dropped = _HOP_BY_HOP | ({"content-length"} if self.command != "HEAD" else set())
                kept = [(k, v) for k, v in answer.getheaders() if k.lower() not in dropped]
                self._answer(answer.status, kept, content)
            finally:
                connection.close()

        def _body(self) -> bytes:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                chunks = []
                while size := int(self.rfile.readline().split(b";")[0], 16):
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
                while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return b"".join(chunks)
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def _answer(self, status: int, headers: list[tuple[str, str]], content: bytes) -> None:
            self.send_response(status)
            for name, value in headers:
                self.send_header(name, value)
            if self.command != "HEAD":
                self.send_header("Content-Length", str(len(content)))
            self.end_headers()
            if self.command != "HEAD":
                with suppress(BrokenPipeError, ConnectionResetError):  # the client went away
                    self.wfile.write(content)

        do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _any

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", faults
    finally:
        server.shutdown()
        server.server_close()
