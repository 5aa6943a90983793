"""Mail intake: real SMTP and LMTP sessions (smtplib) against a real `cps store serve` process."""

from __future__ import annotations

import hashlib
import re
import signal
import smtplib
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from cps.config import Endpoint
from cps.store import MailDatabase
from cps.store.intake import IntakeServer, running
from tests.conftest import run_cps
from tests.integration.intake_helpers import (
    SENDER,
    inbox_raws,
    inbox_received,
    make_database,
    message,
    send_lmtp,
    serving,
    split_trace,
)


@pytest.fixture
def two_databases(tmp_path: Path) -> tuple[Path, Path]:
    return (make_database(tmp_path / "one.db", "alice@example.com", "carol@example.com"),
            make_database(tmp_path / "two.db", "bob@example.net"))


def test_smtp_delivery_lands_in_inbox_byte_for_byte(
    tmp_path: Path, two_databases: tuple[Path, Path]
) -> None:
    one, two = two_databases
    # a dot-stuffed line, 8-bit bytes, a bare LF inside a line and no final CRLF: all are
    # DATA content and must come back exactly, apart from the CRLF smtplib adds at the end
    raw = message("verbatim", b".leading dot\r\ncaf\xc3\xa9 \xff\r\nbare\nLF\r\n..two dots")
    with serving(tmp_path, one, two) as served, served.smtp() as client:
        assert client.sendmail(SENDER, ["alice@example.com"], raw) == {}
    assert inbox_received(one, "alice@example.com") == [raw + b"\r\n"]
    assert inbox_raws(two, "bob@example.net") == []


def test_smtp_several_recipients_in_several_databases(
    tmp_path: Path, two_databases: tuple[Path, Path]
) -> None:
    one, two = two_databases
    raw = message("to three people")
    recipients = ["alice@example.com", "bob@example.net", "CAROL@example.com", "Alice@Example.com"]
    with serving(tmp_path, one, two) as served, served.smtp() as client:
        assert client.sendmail(SENDER, recipients, raw) == {}
    # the same mailbox named twice gets the message once
    assert inbox_received(one, "alice@example.com") == [raw]
    assert inbox_received(one, "carol@example.com") == [raw]
    assert inbox_received(two, "bob@example.net") == [raw]


def test_lmtp_replies_once_per_recipient(tmp_path: Path, two_databases: tuple[Path, Path]) -> None:
    one, two = two_databases
    with serving(tmp_path, one, two) as served, served.lmtp() as client:
        refused = client.sendmail(SENDER, ["alice@example.com", "nobody@example.com"],
                                  message("known and unknown"))
        assert list(refused) == ["nobody@example.com"]
        assert refused["nobody@example.com"][0] == 550
        replies = send_lmtp(client, ["carol@example.com", "bob@example.net"], message("two"))
    assert [code for code, _ in replies] == [250, 250]
    assert [b"<carol@example.com>" in replies[0][1], b"<bob@example.net>" in replies[1][1]] == [
        True, True]
    assert inbox_received(one, "alice@example.com") == [message("known and unknown")]
    assert inbox_received(one, "carol@example.com") == [message("two")]
    assert inbox_received(two, "bob@example.net") == [message("two")]


def test_refusals_unknown_recipient_oversize_and_empty(tmp_path: Path) -> None:
    path = make_database(tmp_path / "mail.db", "alice@example.com")
    big = message("big", b"x" * 2000 + b"\r\n")
    with serving(tmp_path, path, options=("--max-size", "1KiB")) as served:
        with served.smtp() as client:
            client.ehlo()
            assert client.esmtp_features["size"] == "1024"
            with pytest.raises(smtplib.SMTPRecipientsRefused) as unknown:
                client.sendmail(SENDER, ["nobody@example.com"], message("to nobody"))
            code, text = unknown.value.recipients["nobody@example.com"]
            assert (code, text[:5]) == (550, b"5.1.1")
            # announced size over the limit: refused at MAIL FROM
            with pytest.raises(smtplib.SMTPSenderRefused) as announced:
                client.sendmail(SENDER, ["alice@example.com"], big)
            assert announced.value.smtp_code == 552
            # no SIZE announced: refused after DATA
            assert client.mail(SENDER)[0] == 250
            assert client.rcpt("alice@example.com")[0] == 250
            assert client.data(big)[0] == 552
            with pytest.raises(smtplib.SMTPDataError) as empty:
                client.sendmail(SENDER, ["alice@example.com"], b"")
            assert empty.value.smtp_code == 554
            assert b"empty message" in empty.value.smtp_error
        with served.lmtp() as lmtp_client:
            replies = send_lmtp(lmtp_client, ["alice@example.com", "alice@example.com"], big)
            assert [code for code, _ in replies] == [552, 552]
            assert lmtp_client.noop()[0] == 250
    assert inbox_raws(path, "alice@example.com") == []
    assert "empty message" in served.log.read_text()


def test_store_failure_gives_451_and_stores_nothing(
    tmp_path: Path, two_databases: tuple[Path, Path]
) -> None:
    one, two = two_databases
    raw = message("while locked")
    lock = sqlite3.connect(one, isolation_level=None)
    with serving(tmp_path, one, two, options=("--busy-timeout", "0.2")) as served:
        lock.execute("BEGIN EXCLUSIVE")
        with served.smtp() as client:
            with pytest.raises(smtplib.SMTPDataError) as failed:
                client.sendmail(SENDER, ["alice@example.com"], raw)
            assert failed.value.smtp_code == 451
            busy = b"4.3.0 not stored, try again later: mail database busy"
            assert failed.value.smtp_error == busy
            # one database committed, the other did not: SMTP cannot say so, so the sender retries
            with pytest.raises(smtplib.SMTPDataError) as partly:
                client.sendmail(SENDER, ["bob@example.net", "alice@example.com"], raw)
            assert partly.value.smtp_code == 451
        with served.lmtp() as lmtp_client:
            replies = send_lmtp(lmtp_client, ["alice@example.com", "bob@example.net"], raw)
        assert [code for code, _ in replies] == [451, 250]
        lock.execute("ROLLBACK")
        assert inbox_raws(one, "alice@example.com") == []
        with served.smtp() as client:
            assert client.sendmail(SENDER, ["alice@example.com"], raw) == {}
    lock.close()
    assert inbox_received(one, "alice@example.com") == [raw]
    assert inbox_received(two, "bob@example.net") == [raw, raw]
    assert "database busy" in served.log.read_text()


SMTP_CLIENT = """
import pathlib, smtplib, sys
port, folder, *recipients = sys.argv[1:]
with smtplib.SMTP("127.0.0.1", int(port), timeout=120) as client:
    for path in sorted(pathlib.Path(folder).iterdir()):
        refused = client.sendmail("sender@example.org", recipients, path.read_bytes())
        assert not refused, refused
"""

API_WRITER = """
import pathlib, sys
from cps.store import MailDatabase
database, folder, recipient = sys.argv[1:]
with MailDatabase.open(database) as db:
    for path in sorted(pathlib.Path(folder).iterdir()):
        db.deliver(path.read_bytes(), [recipient])
"""


def write_messages(folder: Path, prefix: str, count: int) -> set[str]:
    """Write `count` distinct messages into `folder`; returns their SHA-256 hashes."""
    folder.mkdir()
    hashes = set()
    for n in range(count):
        raw = message(f"{prefix} {n}", f"Body {n} of {prefix}.\r\n".encode() * (n % 7 + 1))
        (folder / f"{n:04d}.eml").write_bytes(raw)
        hashes.add(hashlib.sha256(raw).hexdigest())
    return hashes


def test_concurrent_senders_and_a_direct_writer_lose_nothing(tmp_path: Path) -> None:
    path = make_database(tmp_path / "mail.db", "alice@example.com", "bob@example.com")
    clients, per_client = 4, 50
    sent = {c: write_messages(tmp_path / f"client{c}", f"client {c}", per_client)
            for c in range(clients)}
    direct = write_messages(tmp_path / "direct", "direct", per_client)
    with serving(tmp_path, path) as served:
        processes = [
            subprocess.Popen([sys.executable, "-c", SMTP_CLIENT, str(served.ports["smtp"]),
                              str(tmp_path / f"client{c}"), "alice@example.com", "bob@example.com"])
            for c in range(clients)
        ]
        processes.append(subprocess.Popen(
            [sys.executable, "-c", API_WRITER, str(path), str(tmp_path / "direct"),
             "alice@example.com"]))
        assert [p.wait(timeout=600) for p in processes] == [0] * (clients + 1)
    over_smtp = set().union(*sent.values())
    with MailDatabase.open(path, readonly=True) as database:
        alice = database.messages("alice@example.com", "Inbox")
        bob = database.messages("bob@example.com", "Inbox")
        assert database.connection.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        received = {address: {hashlib.sha256(without_trace(database.fetch_raw(m.id))).hexdigest()
                               for m in messages}
                    for address, messages in (("alice", alice), ("bob", bob))}
    assert len(alice) == clients * per_client + per_client
    assert received["alice"] == over_smtp | direct
    assert len(bob) == clients * per_client
    assert received["bob"] == over_smtp
    # one body for both recipients of each SMTP transaction, trace fields included
    assert {m.sha256 for m in bob} <= {m.sha256 for m in alice}


def without_trace(stored: bytes) -> bytes:
    """A message as received over SMTP, or as the API writer stored it (without trace fields)."""
    return split_trace(stored)[1] if stored.startswith(b"Return-Path: ") else stored


def smtp_transmitted(raw: bytes) -> bytes:
    """The message as an SMTP client that follows RFC 5321 transmits it, which is what any server
    receives: every line ending (CRLF, bare LF, bare CR) becomes CRLF, and the message ends with
    CRLF. smtplib sends bytes unchanged apart from dot-stuffing, so the test sends this form."""
    transmitted = re.sub(rb"\r\n|\r|\n", b"\r\n", raw)
    return transmitted if transmitted.endswith(b"\r\n") else transmitted + b"\r\n"


def corpus_sample(corpus: Path) -> list[Path]:
    """Hard cases from tricky/ (long lines, huge headers, 8-bit, CRLF and bare-CR files, MIME
    torture, TNEF) and ordinary Enron mail."""
    tricky = corpus / "tricky"
    picked = sorted((tricky / "linux-mips-selected").rglob("*"))
    picked += sorted((tricky / "sisimai-set-of-emails" / "maildir" / "dos").rglob("*"))[:15]
    picked += sorted((tricky / "sisimai-set-of-emails" / "maildir" / "mac").rglob("*"))[:15]
    picked += sorted((tricky / "cpython-test_email").rglob("*"))
    picked += [tricky / "flanker" / "torture.eml", tricky / "mimekit" / "tnef" / "rich-text.eml"]
    picked += sorted((corpus / "enron" / "allen-p" / "inbox").rglob("*.eml"))[:40]
    return [p for p in picked if p.is_file() and p.read_bytes().strip()]


def test_corpus_messages_keep_their_bytes(tmp_path: Path, corpus: Path) -> None:
    path = make_database(tmp_path / "mail.db", "alice@example.com")
    expected = [smtp_transmitted(p.read_bytes()) for p in corpus_sample(corpus)]
    assert len(expected) > 100
    with serving(tmp_path, path) as served, served.smtp() as client:
        for raw in expected:
            assert client.sendmail(SENDER, ["alice@example.com"], raw) == {}
    stored = inbox_received(path, "alice@example.com")
    assert len(stored) == len(expected)
    differing = [n for n, (got, want) in enumerate(zip(stored, expected, strict=True))
                 if got != want]
    assert differing == []


def stream_message(n: int) -> bytes:
    return message(f"stream {n}", f"line {n} of a longer message\r\n".encode() * 500)


def test_sigkill_mid_stream_keeps_every_acknowledged_message_whole(tmp_path: Path) -> None:
    path = make_database(tmp_path / "mail.db", "alice@example.com")
    acknowledged: list[int] = []
    failure: list[BaseException] = []

    def send_until_cut_off(port: int) -> None:
        try:
            with smtplib.SMTP("127.0.0.1", port, timeout=60) as client:
                for n in range(100_000):
                    client.sendmail(SENDER, ["alice@example.com"], stream_message(n))
                    acknowledged.append(n)
        except (smtplib.SMTPException, OSError) as error:
            failure.append(error)

    with serving(tmp_path, path) as served:
        client = threading.Thread(target=send_until_cut_off, args=(served.ports["smtp"],))
        client.start()
        deadline = time.monotonic() + 120
        while len(acknowledged) < 30 and client.is_alive() and time.monotonic() < deadline:
            client.join(timeout=0.01)
        served.process.send_signal(signal.SIGKILL)
        served.process.wait(timeout=60)
        client.join(timeout=60)
    assert failure and len(acknowledged) >= 30
    with MailDatabase.open(path) as database:
        assert database.connection.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        stored = [split_trace(database.fetch_raw(m.id))[1]
                  for m in database.messages("alice@example.com", "Inbox")]
    # each stored message is a whole one that was sent, in order; every acknowledged one is
    # there, and at most the one in flight at the kill is stored without its 250 having arrived
    assert stored == [stream_message(n) for n in range(len(stored))]
    assert len(stored) - len(acknowledged) in (0, 1)


def test_sigint_with_sessions_open_stops_cleanly(tmp_path: Path) -> None:
    path = make_database(tmp_path / "mail.db", "alice@example.com")
    with serving(tmp_path, path) as served, served.smtp() as idle, served.smtp() as sending:
        assert idle.ehlo()[0] == 250
        assert sending.ehlo()[0] == 250
        assert sending.mail(SENDER)[0] == 250
        assert sending.rcpt("alice@example.com")[0] == 250
        sending.putcmd("data")
        assert sending.getreply()[0] == 354
        sending.send(b"Subject: cut off in the middle\r\n\r\nhalf a bo")
        served.process.send_signal(signal.SIGINT)
        assert served.process.wait(timeout=60) == 0
        for client in (idle, sending):
            with pytest.raises(smtplib.SMTPServerDisconnected):
                client.noop()
    assert inbox_raws(path, "alice@example.com") == []
    assert "Traceback" not in served.log.read_text()


def test_in_process_server_on_a_free_port(tmp_path: Path) -> None:
    path = make_database(tmp_path / "mail.db", "alice@example.com")
    server = IntakeServer([path], smtp=Endpoint("127.0.0.1", 0), lmtp=None)
    with running(server):
        [(name, endpoint)] = server.listeners
        assert name == "smtp" and endpoint.port != 0
        with smtplib.SMTP(endpoint.host, endpoint.port, timeout=60) as client:
            assert client.sendmail(SENDER, ["alice@example.com"], message("in process")) == {}
    assert inbox_received(path, "alice@example.com") == [message("in process")]
    with pytest.raises(ConnectionRefusedError):
        smtplib.SMTP(endpoint.host, endpoint.port, timeout=60)


def test_serve_refuses_bad_arguments_clearly(tmp_path: Path) -> None:
    path = make_database(tmp_path / "mail.db", "alice@example.com")
    not_a_store = tmp_path / "notes.txt"
    not_a_store.write_text("not a database")
    refused = run_cps("store", "serve", not_a_store, "--smtp", "127.0.0.1:0", check=False)
    assert refused.returncode == 3
    assert b"[not-a-store]" in refused.stderr
    bad_size = run_cps("store", "serve", path, "--max-size", "lots", check=False)
    assert (bad_size.returncode, b"invalid size" in bad_size.stderr) == (2, True)
    bad_address = run_cps("store", "serve", path, "--lmtp", "localhost", check=False)
    assert (bad_address.returncode, b"invalid listen address" in bad_address.stderr) == (2, True)
    with serving(tmp_path, path) as served:
        taken = run_cps("store", "serve", path, "--smtp", f"127.0.0.1:{served.ports['smtp']}",
                        "--lmtp", "off", check=False)
    assert taken.returncode == 2
    assert b"cannot listen for smtp" in taken.stderr
