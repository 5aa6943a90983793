"""Mail intake: SMTP and LMTP listeners that deliver into mail databases.

Owns the network side of delivery. A recipient is accepted only if one of the served databases has a
live mailbox with that address; a message is acknowledged with 250 only after its delivery
transaction committed (the store writes with synchronous=FULL, so it is on disk; deliveries that
arrive together share one transaction, `group.py`), and is stored with
trace header fields in front of the bytes received (`trace.py`). Built on aiosmtpd; recipient
lookups and small messages are handled on the event loop, large messages on worker threads, and
commits on a thread per database, so that the event loop never waits for a commit.
"""

from .server import (
    DEFAULT_LMTP,
    DEFAULT_MAX_SIZE,
    DEFAULT_SMTP,
    IntakeServer,
    running,
    serve,
)
from .tls import server_context

__all__ = [
    "DEFAULT_LMTP",
    "DEFAULT_MAX_SIZE",
    "DEFAULT_SMTP",
    "IntakeServer",
    "running",
    "serve",
    "server_context",
]
