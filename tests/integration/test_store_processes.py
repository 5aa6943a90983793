"""Several real processes on one mail database, and processes killed with SIGKILL mid-transaction."""

from __future__ import annotations

import hashlib
import signal
import subprocess
import sys
from pathlib import Path

from cps.store import MailDatabase

WRITER = """
import sys
from cps.store import MailDatabase
db = MailDatabase.open(sys.argv[1])
for n in range(int(sys.argv[3])):
    raw = f"Subject: writer {sys.argv[2]} message {n}\\r\\n\\r\\nbody {n}\\r\\n".encode()
    db.deliver(raw, ["alice@example.com", "bob@example.com"])
"""

HANG_INSIDE_TRANSACTION = """
import sys
from cps.store import MailDatabase, parse_message
from cps.store import folders, messages
db = MailDatabase.open(sys.argv[1])
parsed = parse_message(b"Subject: never committed\\r\\n\\r\\n" + b"x" * 200_000)
with db.write() as c:
    body = messages.store_body(c, parsed)
    inbox = folders.role_folder(c, folders.live_mailbox(c, "alice@example.com"), "inbox")
    messages.place(c, inbox.id, body, 0)
    print("inside", flush=True)
    sys.stdin.read()
"""


def test_concurrent_writers_lose_nothing(db: MailDatabase) -> None:
    writers, per_writer = 4, 60
    procs = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(db.path), str(w), str(per_writer)])
        for w in range(writers)
    ]
    assert [p.wait(timeout=300) for p in procs] == [0] * writers
    for address in ("alice@example.com", "bob@example.com"):
        inbox = db.messages(address, "Inbox")
        assert sorted(m.uid for m in inbox) == list(range(1, writers * per_writer + 1))
        expected = {
            hashlib.sha256(f"Subject: writer {w} message {n}\r\n\r\nbody {n}\r\n".encode()).hexdigest()
            for w in range(writers) for n in range(per_writer)
        }
        assert {m.sha256 for m in inbox} == expected
    assert db.connection.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_writer_killed_mid_transaction_leaves_nothing(db: MailDatabase) -> None:
    db.deliver(b"Subject: before\r\n\r\nkept\r\n", ["alice@example.com"])
    before = db.stats()
    with subprocess.Popen(
        [sys.executable, "-c", HANG_INSIDE_TRANSACTION, str(db.path)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE,
    ) as proc:
        assert proc.stdout is not None
        assert proc.stdout.readline() == b"inside\n"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    reopened = MailDatabase.open(db.path)
    after = reopened.stats()
    assert (after.messages, after.bodies) == (before.messages, before.bodies)
    assert [m.subject for m in reopened.messages("alice@example.com", "Inbox")] == ["before"]
    assert reopened.connection.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    # the lock died with the process: the database takes writes again at once
    reopened.deliver(b"Subject: after\r\n\r\nx\r\n", ["alice@example.com"])
    reopened.close()


def test_commit_is_durable_across_sigkill(tmp_path: Path) -> None:
    """A delivery that returned survives its process being killed before any clean close."""
    path = tmp_path / "m.db"
    MailDatabase.create(path).close()
    script = (
        "import sys\nfrom cps.store import MailDatabase\n"
        "db = MailDatabase.open(sys.argv[1]); db.create_mailbox('alice@example.com')\n"
        "db.deliver(b'Subject: kept\\r\\n\\r\\nx\\r\\n', ['alice@example.com'])\n"
        "print('delivered', flush=True); sys.stdin.read()\n"
    )
    with subprocess.Popen([sys.executable, "-c", script, str(path)],
                          stdin=subprocess.PIPE, stdout=subprocess.PIPE) as proc:
        assert proc.stdout is not None and proc.stdout.readline() == b"delivered\n"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    with MailDatabase.open(path) as db:
        assert [m.subject for m in db.messages("alice@example.com", "Inbox")] == ["kept"]
