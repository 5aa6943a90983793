"""Group commit of intake: deliveries that arrive together share one transaction, and a message
that fails in a group fails alone. Real SQLite files, real SMTP and LMTP sessions, and a real
`cps store serve` killed with SIGKILL while groups commit, checked against the live store and a
restore from `cps protect`'s repository."""

from __future__ import annotations

import logging
import re
import signal
import smtplib
import sqlite3
import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from cps.config import Endpoint, GroupLimits
from cps.errors import InvalidMessage, NotFound
from cps.store import GroupItem, MailDatabase
from cps.store.intake import IntakeServer, running
from tests.conftest import run_cps
from tests.integration.intake_helpers import (
    SENDER,
    inbox_raws,
    inbox_received,
    make_database,
    message,
    serving,
)
from tests.integration.protect_helpers import QUICK, new_store, protecting, restore, wait_until

ALICE, BOB, GONE = "alice@example.com", "bob@example.com", "gone@example.com"
USERS = (ALICE, BOB)
POISON = "poison"  # the subject the test's trigger refuses to store


def refuse_poison(path: Path) -> None:
    """Make the database refuse, inside the transaction, to store a message with the subject
    POISON: a write that fails in the middle of a group, as a constraint or a full disk would."""
    with sqlite3.connect(path) as connection:
        connection.execute(
            f"CREATE TRIGGER refuse_poison BEFORE INSERT ON bodies WHEN NEW.subject = '{POISON}' "
            "BEGIN SELECT RAISE(ABORT, 'poison refused'); END")
    connection.close()


def test_a_failing_message_is_rolled_back_alone_and_the_group_commits(tmp_path: Path) -> None:
    path = make_database(tmp_path / "mail.db", ALICE, BOB, GONE)
    refuse_poison(path)
    with MailDatabase.open(path) as database:
        database.delete_mailbox(GONE)
        first, second = message("first"), message("second")
        results = database.deliver_group([
            GroupItem(first, (ALICE,)), GroupItem(message("to gone"), (GONE,)),
            GroupItem(message(POISON), (ALICE,)), GroupItem(b"\r\n", (ALICE,)),
            GroupItem(second, (ALICE, BOB))])
        kinds = [type(result) for result in results]
        assert kinds == [list, NotFound, sqlite3.IntegrityError, InvalidMessage, list]
        assert [(d.address, d.uid) for d in results[4]] == [(ALICE, 2), (BOB, 1)]  # type: ignore[union-attr]
        bodies = database.connection.execute("SELECT count(*) FROM bodies").fetchone()[0]
    assert inbox_raws(path, ALICE) == [first, second]
    assert inbox_raws(path, BOB) == [second]
    assert bodies == 2


def deliver_behind_a_held_lock(path: Path, subjects: list[str],
                               caplog: pytest.LogCaptureFixture) -> tuple[dict[str, list[int]],
                                                                          list[int]]:
    """Send one message per subject to ALICE, each over its own connection (SMTP and LMTP in
    turn), into an in-process intake while another connection holds the write lock, until every
    delivery is handed to the committer; then let the lock go. The replies per subject, and the
    size of each group committed, in order."""
    caplog.set_level(logging.DEBUG, logger="cps.store.intake.group")
    server = IntakeServer([path], smtp=Endpoint("127.0.0.1", 0), lmtp=Endpoint("127.0.0.1", 0),
                          busy_timeout=120, group=GroupLimits(100, 1 << 20, 0.005))
    replies: dict[str, list[int]] = {}
    with running(server):
        ports = {name: endpoint.port for name, endpoint in server.listeners}
        blocker = sqlite3.connect(path, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")  # the first group waits for the write lock
        clients = [threading.Thread(target=_send_one, args=(
            "lmtp" if n % 2 else "smtp", ports, subject, replies)) for n, subject in
            enumerate(subjects)]
        for client in clients:
            client.start()
        committer = server.deliverer.committers[0]
        wait_until(lambda: committer.uncommitted == len(subjects), "every delivery handed over")
        blocker.execute("ROLLBACK")
        blocker.close()
        for client in clients:
            client.join()
    sizes = [int(match[1]) for record in caplog.records
             if (match := re.match(r"group committed messages=(\d+)", record.getMessage()))]
    return replies, sizes


def test_deliveries_queued_behind_a_commit_are_committed_together(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = make_database(tmp_path / "mail.db", *USERS)
    refuse_poison(path)
    subjects = [f"queued {n}" for n in range(5)] + [POISON]
    replies, sizes = deliver_behind_a_held_lock(path, subjects, caplog)
    assert {s: r for s, r in replies.items() if s != POISON} == {
        s: [250] for s in subjects if s != POISON}
    assert replies[POISON] == [451]
    # one group was waiting for the lock; every delivery queued behind it joined the next
    assert sum(sizes) == len(subjects) and len(sizes) <= 2, sizes
    assert Counter(inbox_received(path, ALICE)) == Counter(
        message(s) for s in subjects if s != POISON)


def test_a_group_is_one_transaction_so_a_restore_holds_whole_groups(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path, repo = tmp_path / "mail.db", tmp_path / "repo"
    new_store(path, repo)
    with MailDatabase.open(path) as database:
        database.create_mailbox(ALICE)
    subjects = [f"grouped {n}" for n in range(6)]
    with protecting(path, repo, *QUICK) as protector:
        before = protector.wait_for("ready")["txn"]
        replies, sizes = deliver_behind_a_held_lock(path, subjects, caplog)
        after = protector.stop()["txn"]
    assert replies == {s: [250] for s in subjects}
    # each group is one captured transaction: restoring each one in turn adds a whole group
    assert len(sizes) <= 2 and after - before == len(sizes), (before, after, sizes)
    held = []
    for txn in range(before, after + 1):
        restored = tmp_path / f"txn-{txn}.db"
        restore(repo, restored, "--txn", str(txn))
        held.append(len(inbox_raws(restored, ALICE)))
    assert held == [sum(sizes[:n]) for n in range(len(sizes) + 1)], (held, sizes)


def _send_one(protocol: str, ports: dict[str, int], subject: str,
              replies: dict[str, list[int]]) -> None:
    with _client(protocol, ports) as client:
        replies[subject] = _send(client, [ALICE], message(subject))


def _client(protocol: str, ports: dict[str, int]) -> smtplib.SMTP:
    client = (smtplib.LMTP if protocol == "lmtp" else smtplib.SMTP)(
        "127.0.0.1", ports[protocol], timeout=120)
    client.ehlo()
    return client


def _send(client: smtplib.SMTP, recipients: list[str], raw: bytes) -> list[int]:
    """One mail transaction: the reply code for each recipient, in order (the RCPT reply for a
    refused recipient, the reply after DATA for an accepted one: one per recipient over LMTP,
    the one reply over SMTP)."""
    assert client.mail(SENDER)[0] == 250
    codes = [client.rcpt(recipient)[0] for recipient in recipients]
    accepted = [n for n, code in enumerate(codes) if code == 250]
    if not accepted:
        client.rset()
        return codes
    after_data = [client.data(raw)[0]]
    if isinstance(client, smtplib.LMTP):
        after_data += [client.getreply()[0] for _ in accepted[1:]]
    else:
        after_data *= len(accepted)
    for n, code in zip(accepted, after_data, strict=True):
        codes[n] = code
    return codes


# What each sender sends, in turn: (recipients, the message, the replies it must get).
def _plan(sender: int, count: int, big: int) -> list[tuple[list[str], bytes, list[int]]]:
    plan = []
    for n in range(count):
        subject = f"sender {sender} message {n}"
        kind = n % 6
        if kind == 1:
            plan.append(([ALICE], message(POISON, subject.encode() + b"\r\n"), [451]))
        elif kind == 2:
            plan.append(([BOB], b"\r\n", [554]))
        elif kind == 3:
            plan.append((["nobody@example.com"], message(subject), [550]))
        elif kind == 4:
            plan.append(([ALICE, "nobody@example.com", BOB], message(subject), [250, 550, 250]))
        elif kind == 5:
            plan.append(([BOB], message(subject, b"x" * big + b"\r\n"), [250]))
        else:
            plan.append(([ALICE], message(subject), [250]))
    return plan


def test_concurrent_smtp_and_lmtp_clients_each_message_stored_once_or_nowhere(
    tmp_path: Path
) -> None:
    path = make_database(tmp_path / "mail.db", *USERS)
    refuse_poison(path)
    big = 40_000  # bigger than a group's byte bound below: such a message is a group of its own
    plans = {sender: _plan(sender, 18, big) for sender in range(8)}
    failures: list[str] = []

    def run(sender: int, ports: dict[str, int]) -> None:
        with _client("lmtp" if sender % 2 else "smtp", ports) as client:
            for recipients, raw, expected in plans[sender]:
                got = _send(client, recipients, raw)
                if got != expected:
                    failures.append(f"{recipients} {raw[:80]!r}: {got}, expected {expected}")

    with serving(tmp_path, path, options=("--group-max-bytes", "32KiB", "--group-max-messages",
                                          "4", "--group-max-wait", "20ms")) as served:
        senders = [threading.Thread(target=run, args=(n, served.ports)) for n in plans]
        for sender in senders:
            sender.start()
        for sender in senders:
            sender.join()
    assert failures == []
    for user in USERS:
        expected = Counter(raw for plan in plans.values() for recipients, raw, codes in plan
                           for address, code in zip(recipients, codes, strict=True)
                           if address == user and code == 250)
        assert Counter(inbox_received(path, user)) == expected, user


class _Ledger:
    """What each message sent got: 250, a refusal, or no reply (the server died first)."""

    def __init__(self) -> None:
        self.accepted: list[bytes] = []
        self.refused: list[bytes] = []
        self.unanswered: list[bytes] = []
        self.lock = threading.Lock()

    def record(self, raw: bytes, code: int | None) -> None:
        with self.lock:
            (self.unanswered if code is None else self.accepted if code == 250
             else self.refused).append(raw)


def _send_until_cut_off(protocol: str, ports: dict[str, int], sender: int,
                        ledger: _Ledger) -> None:
    """Send numbered messages (every fifth one refused by the store) until the server dies."""
    try:
        client = _client(protocol, ports)
    except OSError:
        return
    n = 0
    while True:
        n += 1
        subject = POISON if n % 5 == 0 else f"sender {sender} message {n}"
        raw = message(subject, f"sender {sender} message {n}\r\n".encode())
        try:
            [code] = _send(client, [ALICE], raw)
        except (smtplib.SMTPException, OSError):
            ledger.record(raw, None)
            return
        ledger.record(raw, code)


def _check_against(ledger: _Ledger, path: Path, where: str) -> None:
    stored = Counter(inbox_received(path, ALICE))
    accepted, unanswered = Counter(ledger.accepted), Counter(ledger.unanswered)
    assert all(stored[raw] == 1 for raw in accepted), f"{where}: a 250 message lost or doubled"
    assert not any(stored[raw] for raw in ledger.refused), f"{where}: a refused message stored"
    assert set(stored) <= set(accepted) | set(unanswered), f"{where}: a message never sent"
    assert max(stored.values()) == 1, f"{where}: a message stored twice"


def test_sigkill_during_group_commits_loses_no_accepted_message(tmp_path: Path) -> None:
    path, repo = tmp_path / "mail.db", tmp_path / "repo"
    new_store(path, repo)
    with MailDatabase.open(path) as database:
        database.create_mailbox(ALICE)
    refuse_poison(path)
    ledger = _Ledger()
    with protecting(path, repo, *QUICK) as protector:
        with serving(tmp_path, path) as served:
            senders = [threading.Thread(target=_send_until_cut_off, args=(
                "lmtp" if n % 2 else "smtp", served.ports, n, ledger)) for n in range(6)]
            for sender in senders:
                sender.start()
            wait_until(_enough(ledger, 150), "150 messages accepted")
            served.process.send_signal(signal.SIGKILL)
            served.process.wait()
            for sender in senders:
                sender.join()
        protector.stop()
    assert len(ledger.refused) >= 10 and len(ledger.accepted) >= 150
    _check_against(ledger, path, "the live store")
    restored = tmp_path / "restored.db"
    restore(repo, restored, "--latest")
    _check_against(ledger, restored, "the restore")
    assert Counter(inbox_raws(restored, ALICE)) == Counter(inbox_raws(path, ALICE))


def _enough(ledger: _Ledger, count: int) -> Callable[[], bool]:
    return lambda: len(ledger.accepted) >= count


def test_serve_refuses_bad_group_bounds_clearly(tmp_path: Path) -> None:
    path = make_database(tmp_path / "mail.db", ALICE)
    for option, value, words in (("--group-max-messages", "0", b"not in the range"),
                                 ("--group-max-bytes", "lots", b"invalid size"),
                                 ("--group-max-wait", "soon", b"as a duration")):
        refused = run_cps("store", "serve", path, option, value, check=False)
        assert (refused.returncode, words in refused.stderr) == (2, True), refused.stderr
