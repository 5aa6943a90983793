"""STARTTLS for the listeners: the server's TLS context, from a certificate and a private key in PEM
files."""

from __future__ import annotations

import ssl
from pathlib import Path

from ...errors import UsageError

_HINT = ("Give a PEM certificate (its chain may follow it in the same file) and the unencrypted PEM "
         "private key that belongs to it.")


def server_context(certificate: Path, key: Path) -> ssl.SSLContext:
    """A server-side TLS context with Python's secure defaults, serving `certificate`."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    for path in (certificate, key):
        if not path.is_file():
            raise UsageError(f"no TLS file {path}", hint=_HINT)
    try:
        context.load_cert_chain(certificate, key, password=_no_passphrase)
    except (ssl.SSLError, OSError) as error:
        raise UsageError(
            f"cannot use the TLS certificate {certificate} with the key {key}: "
            f"{error.strerror or error}", hint=_HINT) from error
    return context


def _no_passphrase() -> str:
    """Refuse to ask for a passphrase: the server starts unattended."""
    raise UsageError("the TLS private key is encrypted", hint=_HINT)
