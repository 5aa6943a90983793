"""`cps store serve`: receive mail over SMTP and LMTP and deliver it into mail databases."""

from __future__ import annotations

import ssl
from pathlib import Path

import click

from ..config import INTAKE_KEYS, GroupLimits, parse_duration, parse_endpoint_or_off, parse_size
from ..errors import UsageError
from ..store.intake import (
    DEFAULT_LMTP,
    DEFAULT_SMTP,
    IntakeServer,
    serve,
    server_context,
)
from .output import emit


def _tls(certificate: Path | None, key: Path | None) -> ssl.SSLContext | None:
    if certificate is None and key is None:
        return None
    if certificate is None or key is None:
        raise UsageError("STARTTLS needs both --tls-cert and --tls-key",
                         hint="Give the certificate and its private key, or neither.")
    return server_context(certificate, key)


@click.command("serve")
@click.argument(
    "databases", metavar="DB [DB ...]", nargs=-1, required=True,
    type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option(
    "--smtp", "smtp", default=str(DEFAULT_SMTP), show_default=True, metavar="HOST:PORT",
    help="Where to listen for SMTP; port 0 picks a free port, 'off' disables SMTP.")
@click.option(
    "--lmtp", "lmtp", default=str(DEFAULT_LMTP), show_default=True, metavar="HOST:PORT",
    help="Where to listen for LMTP; port 0 picks a free port, 'off' disables LMTP.")
@click.option(
    "--max-size", default="32MiB", show_default=True, metavar="SIZE",
    help="Largest message accepted, as transmitted (advertised as SIZE); larger ones get 552.")
@click.option(
    "--busy-timeout", type=click.FloatRange(min=0), default=30.0, show_default=True,
    metavar="SECONDS",
    help="How long a delivery waits for another writer before replying 451 (try again later).")
@click.option(
    "--group-max-messages", type=click.IntRange(min=1),
    default=INTAKE_KEYS["group_max_messages"].default, show_default=True, metavar="N",
    help="Most deliveries committed together in one transaction; 1 commits each alone.")
@click.option(
    "--group-max-bytes", default=INTAKE_KEYS["group_max_bytes"].default, show_default=True,
    metavar="SIZE", help="Most bytes of mail committed together in one transaction.")
@click.option(
    "--group-max-wait", default=INTAKE_KEYS["group_max_wait"].default, show_default=True,
    metavar="DURATION",
    help="Longest wait for deliveries already received and being parsed to join a transaction.")
@click.option(
    "--tls-cert", type=click.Path(dir_okay=False, exists=True, path_type=Path), metavar="PEM",
    help="Offer STARTTLS with this certificate (and chain), in PEM.  [default: no STARTTLS]")
@click.option(
    "--tls-key", type=click.Path(dir_okay=False, exists=True, path_type=Path), metavar="PEM",
    help="The certificate's private key, in PEM, unencrypted.")
def serve_command(
    databases: tuple[Path, ...], smtp: str, lmtp: str, max_size: str, busy_timeout: float,
    group_max_messages: int, group_max_bytes: str, group_max_wait: str,
    tls_cert: Path | None, tls_key: Path | None,
) -> None:
    """Receive mail over SMTP and LMTP and deliver it into the mailboxes of the mail
    databases DB. A recipient is accepted if one of the databases (the first, in the order
    given) has a live mailbox with that address; others get 550. A message is acknowledged
    with 250 only once it is committed to disk; if it cannot be stored the reply is 451 and
    the sender retries. Deliveries that arrive together are committed together, in one
    transaction (one fsync), within the --group-max-* bounds; one that fails gets its own
    reply and the others are stored. The stored message is the bytes received with Return-Path,
    Delivered-To (for a single recipient) and Received header fields in front.

    Prints one line per listener ("smtp listening on 127.0.0.1:2525") when ready, and runs
    until SIGTERM or SIGINT.

    Examples:

    \b
      cps store serve mail01.db mail02.db
      cps store serve mail.db --smtp off --lmtp 127.0.0.1:24
      cps store serve mail.db --smtp 0.0.0.0:25 --max-size 50MB --busy-timeout 10 \\
          --tls-cert /etc/ssl/mx.pem --tls-key /etc/ssl/private/mx.key
    """
    server = IntakeServer(
        databases,
        smtp=parse_endpoint_or_off(smtp),
        lmtp=parse_endpoint_or_off(lmtp),
        max_size=parse_size(max_size),
        busy_timeout=busy_timeout,
        tls=_tls(tls_cert, tls_key),
        group=GroupLimits(group_max_messages, parse_size(group_max_bytes),
                          parse_duration(group_max_wait)),
    )
    serve(server, lambda name, endpoint: emit(f"{name} listening on {endpoint}", False, str))
