"""The trace header fields intake puts in front of every message it delivers, as the final delivery
agent of RFC 5321 4.4 does: Return-Path (the envelope sender, which is otherwise lost), Delivered-To
and Received.

A stored message is these lines followed by the exact bytes received (after SMTP's dot-unstuffing).
One delivery's bytes are stored once per database and shared by every mailbox they go to there
(single-instance storage), so a recipient is named (Delivered-To, Received's "for" clause) only when
the delivery goes to exactly one mailbox: otherwise every recipient would read the others' addresses,
Bcc recipients included. Dovecot's LMTP names no recipient for several either. For one recipient
(continuation lines begin with a tab):

    Return-Path: <sender@example.org>
    Delivered-To: alice@example.com
    Received: from mx.example.org ([192.0.2.7])
        by cps.example.com (CPS) with ESMTPS id 5f0c2d9e8a71b346
        for <alice@example.com>; Mon, 23 Nov 2026 10:00:00 +0000
"""

from __future__ import annotations

import ipaddress
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from email.utils import formatdate

NULL_SENDER = "<>"
# Client-supplied text (sender, HELO name) must not end or fold a header line. It arrives decoded
# with surrogateescape (aiosmtpd), and goes back to the bytes the client sent.
_CONTROLS = {c: "?" for c in (*range(0x20), 0x7F)}


@dataclass(frozen=True, slots=True)
class Trace:
    """Where a message came from: the envelope sender as MAIL FROM gave it ("<>" for the null
    sender), the client's HELO/LHLO name and IP address, the protocol by its RFC 3848 name (ESMTP,
    ESMTPS, LMTP...), and this server's host name."""

    sender: str
    helo: str
    peer: str
    protocol: str
    hostname: str
    id: str = field(default_factory=lambda: secrets.token_hex(8))
    received_at: float = field(default_factory=time.time)

    def header_block(self, mailboxes: Sequence[str]) -> bytes:
        """The header lines to prepend for a delivery to `mailboxes` (canonical addresses)."""
        named = [_clean(mailboxes[0])] if len(mailboxes) == 1 else []
        received = [
            f"from {_word(self.helo)} ({_address_literal(self.peer)})",
            f"by {_clean(self.hostname)} (CPS) with {self.protocol} id {self.id}",
            *(f"for <{address}>" for address in named),
        ]
        lines = [
            f"Return-Path: {_path(self.sender)}",
            *(f"Delivered-To: {address}" for address in named),
            "Received: " + "\r\n\t".join(received) + f"; {formatdate(self.received_at, localtime=True)}",
        ]
        return "".join(line + "\r\n" for line in lines).encode("utf-8", "surrogateescape")


def _path(sender: str) -> str:
    return NULL_SENDER if sender in ("", NULL_SENDER) else f"<{_clean(sender)}>"


def _clean(text: str) -> str:
    return text.translate(_CONTROLS)


def _word(text: str) -> str:
    """The first word of a HELO argument (a host name or an address literal)."""
    words = _clean(text).split()
    return words[0] if words else "unknown"


def _address_literal(peer: str) -> str:
    """The client's IP address as an RFC 5321 address literal."""
    try:
        address = ipaddress.ip_address(peer)
    except ValueError:
        return "unknown"
    return f"[IPv6:{address}]" if address.version == 6 else f"[{address}]"
