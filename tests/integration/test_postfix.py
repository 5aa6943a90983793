"""Postfix in front of CPS: a private Postfix instance hands mail to `IntakeServer` over LMTP.

The instance lives entirely in a temporary folder (its own config_directory, queue_directory and
data_directory) and listens on a free loopback port, so it neither needs nor touches the system's
Postfix configuration. The configuration written here is the one docs/postfix.md documents.
"""

from __future__ import annotations

import os
import shutil
import smtplib
import socket
import sqlite3
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import pytest

from cps.config import Endpoint
from cps.store import MailDatabase
from cps.store.intake import IntakeServer, running

pytestmark = pytest.mark.postfix

POSTFIX = Path("/usr/sbin/postfix")
POSTQUEUE = Path("/usr/sbin/postqueue")
SENDMAIL = Path("/usr/sbin/sendmail")
DELIVERY_DEADLINE = 60.0
POLL_INTERVAL = 0.1
DOMAIN = "example.test"

MAIN_CF = """\
compatibility_level = 3.6
queue_directory = {root}/queue
data_directory = {root}/data
maillog_file = {root}/postfix.log
maillog_file_prefixes = {root}
syslog_name = postfix-cps-test
mail_owner = postfix
setgid_group = postdrop
inet_interfaces = loopback-only
inet_protocols = ipv4
myhostname = mx.{domain}
mydomain = {domain}
mydestination =
mynetworks = 127.0.0.0/8
alias_maps =
alias_database =
virtual_mailbox_domains = {domain}
virtual_mailbox_maps =
virtual_transport = lmtp:inet:127.0.0.1:{lmtp_port}
lmtp_line_length_limit = 0
smtpd_reject_unlisted_recipient = no
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
smtpd_recipient_restrictions = reject_unauth_destination, reject_unverified_recipient
unverified_recipient_reject_code = 550
address_verify_poll_delay = 1s
"""

MASTER_CF = """\
127.0.0.1:{smtp_port} inet n - n - - smtpd
pickup    unix  n - n 60 1 pickup
cleanup   unix  n - n - 0 cleanup
qmgr      unix  n - n 300 1 qmgr
rewrite   unix  - - n - - trivial-rewrite
bounce    unix  - - n - 0 bounce
defer     unix  - - n - 0 bounce
trace     unix  - - n - 0 bounce
verify    unix  - - n - 1 verify
flush     unix  n - n 1000? 0 flush
proxymap  unix  - - n - - proxymap
showq     unix  n - n - - showq
error     unix  - - n - - error
retry     unix  - - n - - error
discard   unix  - - n - - discard
lmtp      unix  - - n - - lmtp
anvil     unix  - - n - 1 anvil
scache    unix  - - n - 1 scache
postlog   unix-dgram n - n - 1 postlogd
"""


@pytest.fixture
def postfix_root() -> Iterator[Path]:
    """A folder for a private Postfix instance. Not under pytest's tmp_path: Postfix's daemons
    drop to the postfix user, who must be able to reach it, and pytest's folders are private."""
    if not POSTFIX.exists():
        pytest.skip(why_no_postfix())
    if os.geteuid() != 0:
        pytest.skip("a private Postfix instance has to be started as root")
    root = Path(tempfile.mkdtemp(prefix="cps-postfix-"))
    root.chmod(0o755)
    try:
        yield root
    finally:
        shutil.rmtree(root)


def why_no_postfix() -> str:
    if SENDMAIL.exists():
        return (f"Postfix is not installed, and another mail transport agent provides {SENDMAIL}: "
                "installing Postfix would remove it, so scripts/system-packages does not (with "
                "CI=true it does)")
    return f"Postfix is not installed ({POSTFIX} is absent): run scripts/system-packages as root"


def free_port() -> int:
    """A loopback port free right now (Postfix needs its port written in master.cf)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def write_instance(root: Path, smtp_port: int, lmtp_port: int) -> Path:
    """Write a private Postfix instance under `root`; returns its config_directory."""
    config = root / "etc"
    for folder in (config, root / "queue", root / "data"):
        folder.mkdir(parents=True)
    shutil.chown(root / "data", "postfix")
    values = {"root": root, "domain": DOMAIN, "smtp_port": smtp_port, "lmtp_port": lmtp_port}
    (config / "main.cf").write_text(MAIN_CF.format(**values))
    (config / "master.cf").write_text(MASTER_CF.format(**values))
    return config


@contextmanager
def postfix_running(config: Path, log: Path) -> Iterator[None]:
    started = subprocess.run([POSTFIX, "-c", config, "start"], capture_output=True, text=True)
    assert started.returncode == 0, started.stderr + (log.read_text() if log.exists() else "")
    try:
        yield
    finally:
        subprocess.run([POSTFIX, "-c", config, "stop"], capture_output=True, check=True)
        wait_for(lambda: subprocess.run(
            [POSTFIX, "-c", config, "status"], capture_output=True).returncode != 0,
            "postfix to stop")


def wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DELIVERY_DEADLINE
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(POLL_INTERVAL)


def inbox(path: Path, address: str) -> list[bytes]:
    with MailDatabase.open(path, readonly=True) as database:
        return [database.fetch_raw(m.id) for m in database.messages(address, "Inbox")]


def rcpt_reply(client: smtplib.SMTP, address: str) -> int:
    """The final reply to RCPT TO, once Postfix's 450 "verification in progress" is over."""
    replies: list[int] = []

    def verified() -> bool:
        assert client.mail("sender@example.org")[0] == 250
        replies.append(client.rcpt(address)[0])
        client.rset()
        return replies[-1] != 450

    wait_for(verified, f"Postfix to verify {address}")
    return replies[-1]


def test_postfix_delivers_over_lmtp_and_retries_after_451(postfix_root: Path) -> None:
    database = postfix_root / "mail.db"
    alice = f"alice@{DOMAIN}"
    with MailDatabase.create(database) as store:
        store.create_mailbox(alice)
    first, second = message("first"), message("second")
    server = IntakeServer([database], smtp=None, lmtp=Endpoint("127.0.0.1", 0), busy_timeout=0.2)
    with running(server), closing(sqlite3.connect(database, isolation_level=None)) as lock:
        [(_, lmtp)] = server.listeners
        smtp_port = free_port()
        config = write_instance(postfix_root, smtp_port, lmtp.port)
        log = postfix_root / "postfix.log"
        with (
            postfix_running(config, log),
            smtplib.SMTP("127.0.0.1", smtp_port, timeout=60) as client,
        ):
            # Postfix asks CPS (an LMTP RCPT probe) before accepting a recipient
            assert rcpt_reply(client, f"nobody@{DOMAIN}") == 550
            assert client.sendmail("sender@example.org", [alice], first) == {}
            wait_for(lambda: len(inbox(database, alice)) == 1, "delivery over LMTP")
            # the store cannot commit: CPS answers 451, Postfix keeps the message and retries
            lock.execute("BEGIN EXCLUSIVE")
            assert client.sendmail("sender@example.org", [alice], second) == {}
            wait_for(lambda: "status=deferred" in log.read_text(), "Postfix to defer")
            assert f"said: 451 4.3.0 <{alice}> not stored" in log.read_text()
            lock.execute("ROLLBACK")
            assert len(inbox(database, alice)) == 1
            subprocess.run([POSTQUEUE, "-c", config, "-f"], check=True)
            wait_for(lambda: len(inbox(database, alice)) == 2, "the retried delivery")
    stored = inbox(database, alice)
    # Postfix prepends its trace header and CPS its own before that; the message arrives
    # unchanged, its long line unbroken (lmtp_line_length_limit = 0)
    assert [raw.endswith(sent) for raw, sent in zip(stored, (first, second), strict=True)] == [
        True, True]
    cps_trace = f"Return-Path: <sender@example.org>\r\nDelivered-To: {alice}\r\n".encode()
    assert all(raw.startswith(cps_trace) for raw in stored)
    assert [raw.count(b"\r\nReceived: from ") for raw in stored] == [2, 2]


def message(subject: str) -> bytes:
    return (f"From: Sender <sender@example.org>\r\nTo: <alice@{DOMAIN}>\r\n"
            f"Subject: {subject}\r\nDate: Mon, 23 Nov 2026 10:00:00 +0000\r\n"
            f"Message-ID: <{subject}@example.org>\r\n\r\nHello over LMTP.\r\n"
            f"A line longer than SMTP's 1000 octets: {'x' * 3000}\r\n").encode()
