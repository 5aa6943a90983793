"""A client of a running CPS server's HTTP API, for the CLI's `--server URL --token-file F`.

`ServerClient` sends the requests the CLI's verbs need and hands back the API's JSON documents,
which have the shape the same verbs print locally. A problem answer (RFC 9457) becomes the
CPSError of the same code, so a command fails with the same code and exit status whether it ran
against a repository or a server; what only a server can answer (a refused token, a role that
is not enough) is an `AccessDenied`, and a server that cannot be reached is a `ServerError`.
Long operations are jobs: `wait` follows one, reporting its progress, and cancels it if the
wait is interrupted.
"""

from __future__ import annotations

from .session import JOB_POLL_SECONDS, ServerClient, read_token

__all__ = ["JOB_POLL_SECONDS", "ServerClient", "read_token"]
