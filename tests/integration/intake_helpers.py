"""Running `cps store serve` for tests, talking to it, and reading what it stored."""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import os
import re
import selectors
import signal
import smtplib
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from cps.store import MailDatabase
from tests.conftest import CPS

STARTUP_DEADLINE = 60.0
SENDER = "sender@example.org"


@dataclass
class Served:
    """A running `cps store serve` subprocess and the loopback ports it reported."""

    process: subprocess.Popen[bytes]
    ports: dict[str, int]
    log: Path

    def smtp(self) -> smtplib.SMTP:
        return smtplib.SMTP("127.0.0.1", self.ports["smtp"], timeout=60)

    def lmtp(self) -> smtplib.LMTP:
        client = smtplib.LMTP("127.0.0.1", self.ports["lmtp"], timeout=60)
        client.ehlo()
        return client


@contextmanager
def serving(log_dir: Path, *databases: Path, options: tuple[str, ...] = ()) -> Iterator[Served]:
    """Run `cps store serve` on free ports; afterwards stop it with SIGTERM and check that it
    exited 0 (unless the test already ended it)."""
    log = log_dir / f"serve-{time.monotonic_ns()}.log"
    with log.open("wb") as stderr:
        process = subprocess.Popen(
            [*CPS, "store", "serve", *map(str, databases),
             "--smtp", "127.0.0.1:0", "--lmtp", "127.0.0.1:0", *options],
            stdout=subprocess.PIPE, stderr=stderr)
    with process:
        try:
            yield Served(process, read_listening_lines(process, log), log)
        except BaseException:
            process.kill()
            raise
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=60)
            assert process.returncode == 0, log.read_text()


def read_listening_lines(process: subprocess.Popen[bytes], log: Path) -> dict[str, int]:
    """Wait, up to a deadline, for the "<protocol> listening on 127.0.0.1:<port>" lines."""
    assert process.stdout is not None
    deadline = time.monotonic() + STARTUP_DEADLINE
    output = b""
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        while output.count(b"\n") < 2:
            remaining = deadline - time.monotonic()
            chunk = os.read(process.stdout.fileno(), 4096) if selector.select(remaining) else b""
            if not chunk:
                raise AssertionError(f"no listening lines; output {output!r}, log:\n"
                                     + log.read_text())
            output += chunk
    found = re.findall(rb"^(smtp|lmtp) listening on 127\.0\.0\.1:(\d+)$", output, re.MULTILINE)
    assert len(found) == 2, output
    return {name.decode(): int(port) for name, port in found}


def make_database(path: Path, *addresses: str) -> Path:
    with MailDatabase.create(path) as database:
        for address in addresses:
            database.create_mailbox(address)
    return path


def inbox_raws(path: Path, address: str) -> list[bytes]:
    """The raw bytes of every message in the mailbox's Inbox, in UID order."""
    with MailDatabase.open(path, readonly=True) as database:
        return [database.fetch_raw(m.id) for m in database.messages(address, "Inbox")]


# The trace header fields CPS puts in front of a delivered message (src/cps/store/intake/trace.py).
TRACE = re.compile(
    rb"Return-Path: <(?P<sender>[^>\r\n]*)>\r\n"
    rb"(?:Delivered-To: (?P<delivered_to>[^\r\n]+)\r\n)?"
    rb"Received: from (?P<helo>\S+) \(\[(?P<ip>[^]\r\n]+)\]\)\r\n"
    rb"\tby (?P<host>\S+) \(CPS\) with (?P<protocol>[A-Z]+) id [0-9a-f]{16}"
    rb"(?:\r\n\tfor <(?P<for>[^>\r\n]+)>)?; (?P<date>[^\r\n]+)\r\n")


def split_trace(stored: bytes) -> tuple[dict[str, str | None], bytes]:
    """The trace fields CPS added in front of a stored message, and the bytes received after them."""
    match = TRACE.match(stored)
    assert match is not None, f"no trace header fields at the start of {stored[:400]!r}"
    fields = {name: None if value is None else value.decode() for name, value in
              match.groupdict().items()}
    return fields, stored[match.end():]


def inbox_received(path: Path, address: str) -> list[bytes]:
    """What was received of every message in the mailbox's Inbox: the stored bytes after the
    trace header fields, which must name the test's sender and, for one recipient, the mailbox."""
    received = []
    for stored in inbox_raws(path, address):
        fields, rest = split_trace(stored)
        assert fields["sender"] == SENDER
        assert fields["delivered_to"] in (None, address) and fields["for"] == fields["delivered_to"]
        received.append(rest)
    return received


def message(subject: str, body: bytes = b"Hello.\r\n") -> bytes:
    return (f"From: Sender <{SENDER}>\r\nTo: someone@example.com\r\nSubject: {subject}\r\n"
            f"Message-ID: <{hashlib.sha256(subject.encode()).hexdigest()[:16]}@test>\r\n\r\n"
            ).encode() + body


def send_lmtp(client: smtplib.LMTP, recipients: list[str], raw: bytes) -> list[tuple[int, bytes]]:
    """One LMTP transaction; returns the reply after DATA for each recipient, in order
    (smtplib.LMTP.sendmail reads only the first of them)."""
    assert client.mail(SENDER)[0] == 250
    for recipient in recipients:
        assert client.rcpt(recipient)[0] == 250
    replies = [client.data(raw)]
    replies += [client.getreply() for _ in recipients[1:]]
    return replies


def make_certificate(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and localhost, and its key, as PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([
            x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256()))
    certificate_path, key_path = folder / "cert.pem", folder / "key.pem"
    certificate_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    return certificate_path, key_path
