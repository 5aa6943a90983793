"""Intake reads a plain address of MAIL FROM or RCPT TO itself; what it reads must be what
aiosmtpd's own parser reads, for every address."""

from __future__ import annotations

import pytest
from aiosmtpd.smtp import SMTP

from cps.store.intake.server import _IntakeSMTP

ARGUMENTS = [
    "<alice@example.com>", " <a.b@c.d> SIZE=12", "<user+tag@Example.COM>  BODY=8BITMIME  ",
    "<a@b.c> (comment) SIZE=1", "<a@b.c>(comment)", "<a@b.c>\t", "<a@b.c>x", "<a..b@c>",
    '<"quoted name"@c.d>', "<>", "a@b", "<a@b.c", "<a@[192.0.2.1]>", "<@relay:a@b.c>",
    "<.a@b>", "<a@b.>", "<a@-b.c>", "<" + "x" * 70 + "@b.c>", "<j\u00fcrgen@example.com>",
]


@pytest.mark.parametrize("limit", [0, 64])
def test_plain_addresses_read_as_aiosmtpd_reads_them(limit: int) -> None:
    reference, intake = SMTP.__new__(SMTP), _IntakeSMTP.__new__(_IntakeSMTP)
    reference.local_part_limit = intake.local_part_limit = limit
    for argument in ARGUMENTS:
        assert intake._getaddr(argument) == SMTP._getaddr(reference, argument), argument
