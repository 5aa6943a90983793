"""What delivery adds to a message (Return-Path, Delivered-To, Received), the CPS banner, and
STARTTLS with a certificate made here, all through real `cps store serve` sessions."""

from __future__ import annotations

import email.utils
import socket
import ssl
import time
from pathlib import Path

from tests.conftest import run_cps
from tests.integration.intake_helpers import (
    SENDER,
    inbox_raws,
    make_certificate,
    make_database,
    message,
    send_lmtp,
    serving,
    split_trace,
)


def test_starttls_delivery_stores_trace_fields_then_the_exact_bytes(tmp_path: Path) -> None:
    path = make_database(tmp_path / "mail.db", "alice@example.com")
    certificate, key = make_certificate(tmp_path)
    trusted = ssl.create_default_context(cafile=certificate)
    raw = message("over TLS", b".dot-stuffed\r\ncaf\xc3\xa9\r\nno final line break")
    before = time.time()
    options = ("--tls-cert", str(certificate), "--tls-key", str(key))
    with serving(tmp_path, path, options=options) as served, served.smtp() as client:
        client.ehlo()
        assert client.has_extn("starttls")
        assert client.starttls(context=trusted)[0] == 220
        assert isinstance(client.sock, ssl.SSLSocket) and client.sock.version() is not None
        assert client.sendmail(SENDER, ["Alice@Example.com"], raw) == {}
        helo = client.local_hostname
    [stored] = inbox_raws(path, "alice@example.com")
    fields, received = split_trace(stored)
    assert received == raw + b"\r\n"  # smtplib ends the DATA with CRLF
    assert fields == {
        "sender": SENDER, "delivered_to": "alice@example.com", "helo": helo, "ip": "127.0.0.1",
        "host": socket.gethostname(), "protocol": "ESMTPS", "for": "alice@example.com",
        "date": fields["date"],
    }
    date = email.utils.parsedate_to_datetime(str(fields["date"])).timestamp()
    assert before - 1 <= date <= time.time()


def test_lmtp_to_several_mailboxes_names_none_of_them_and_the_null_sender(tmp_path: Path) -> None:
    path = make_database(tmp_path / "mail.db", "alice@example.com", "bob@example.com")
    raw = message("to two")
    with serving(tmp_path, path) as served, served.lmtp() as client:
        replies = send_lmtp(client, ["alice@example.com", "bob@example.com"], raw)
        assert [code for code, _ in replies] == [250, 250]
        assert client.mail("<>")[0] == 250
        assert client.rcpt("bob@example.com")[0] == 250
        assert client.data(message("bounce"))[0] == 250
    [to_alice] = inbox_raws(path, "alice@example.com")
    to_bob, bounce = inbox_raws(path, "bob@example.com")
    # one body, shared by both mailboxes: it names neither recipient (Bcc recipients stay hidden)
    assert to_alice == to_bob
    fields, received = split_trace(to_alice)
    assert received == raw
    assert (fields["sender"], fields["delivered_to"], fields["for"]) == (SENDER, None, None)
    assert (fields["protocol"], fields["ip"]) == ("LMTP", "127.0.0.1")
    fields, received = split_trace(bounce)
    assert received == message("bounce")
    assert (fields["sender"], fields["delivered_to"]) == ("", "bob@example.com")
    assert bounce.startswith(b"Return-Path: <>\r\nDelivered-To: bob@example.com\r\n")


def test_banners_name_the_host_and_cps(tmp_path: Path) -> None:
    path = make_database(tmp_path / "mail.db", "alice@example.com")
    with serving(tmp_path, path) as served:
        banners = {name: greeting(port) for name, port in served.ports.items()}
    host = socket.gethostname().encode()
    assert banners == {"smtp": b"220 " + host + b" ESMTP CPS\r\n",
                       "lmtp": b"220 " + host + b" LMTP CPS\r\n"}


def greeting(port: int) -> bytes:
    """The first line a server sends on a new connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=60) as connection:
        return connection.makefile("rb").readline()


def test_serve_refuses_incomplete_or_unusable_tls_files(tmp_path: Path) -> None:
    path = make_database(tmp_path / "mail.db", "alice@example.com")
    certificate, key = make_certificate(tmp_path)
    other_folder = tmp_path / "other"
    other_folder.mkdir()
    _other_certificate, other_key = make_certificate(other_folder)
    listen = ("--smtp", "127.0.0.1:0", "--lmtp", "off")
    alone = run_cps("store", "serve", path, *listen, "--tls-cert", certificate, check=False)
    assert (alone.returncode, b"needs both --tls-cert and --tls-key" in alone.stderr) == (2, True)
    mismatch = run_cps("store", "serve", path, *listen, "--tls-cert", certificate,
                       "--tls-key", other_key, check=False)
    assert mismatch.returncode == 2
    assert b"cannot use the TLS certificate" in mismatch.stderr
    assert b"hint: " in mismatch.stderr
    missing = run_cps("store", "serve", path, *listen, "--tls-cert", tmp_path / "none.pem",
                      "--tls-key", key, check=False)
    assert missing.returncode == 2 and str(tmp_path / "none.pem").encode() in missing.stderr
