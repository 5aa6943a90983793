"""What the store commands print for people: hostile text made harmless, words counted right,
and progress bars on a terminal only."""

from __future__ import annotations

import json
import os
import subprocess
import threading
from pathlib import Path

from cps.store import MailDatabase
from tests.conftest import CPS, run_cps

HOSTILE = (
    "From: \x1b[31mMallory\x1b[0m <mallory@example.org>\r\n"
    "Subject: hello \x1b]0;pwned\x07 there \u202egnp.exe\r\n"
    "Message-ID: <hostile@example.org>\r\n\r\n"
    "first line \x1b[2J\r\nsecond line\r\n"
).encode()


def make_store(tmp_path: Path, *raws: bytes) -> Path:
    path = tmp_path / "mail.db"
    with MailDatabase.create(path) as db:
        db.create_mailbox("alice@example.com")
        for raw in raws:
            db.deliver(raw, ["alice@example.com"])
    return path


def test_ls_and_show_print_control_characters_as_escapes(tmp_path: Path) -> None:
    path = make_store(tmp_path, HOSTILE)
    listing = run_cps("store", "ls", path, "alice@example.com/Inbox").stdout
    shown = run_cps("store", "show", path, "alice@example.com/Inbox", "1").stdout
    for printed in (listing, shown):
        assert b"\x1b" not in printed and b"\x07" not in printed
        assert "\u202e".encode() not in printed
        assert b"hello \\x1b]0;pwned\\x07 there \\u202egnp.exe" in printed
    assert b"\\x1b[31mMallory\\x1b[0m" in listing
    lines = shown.decode().splitlines()
    assert "Message-ID  <hostile@example.org>" in lines
    assert not any("Message_Id" in line for line in lines)
    assert lines[-2:] == ["first line \\x1b[2J", "second line"]  # CRLF is a line break, no \\x0d
    # the machine-readable forms stay exact
    assert run_cps("store", "show", path, "alice@example.com/Inbox", "1", "--raw").stdout == HOSTILE
    as_json = json.loads(run_cps("store", "ls", path, "alice@example.com/Inbox", "--json").stdout)
    assert as_json[0]["subject"] == "hello \x1b]0;pwned\x07 there \u202egnp.exe"


def test_mail_read_back_from_a_backup_is_printed_as_harmlessly(tmp_path: Path) -> None:
    path = make_store(tmp_path, HOSTILE)
    repo = tmp_path / "repo"
    run_cps("repo", "init", repo)
    run_cps("recovery-point", "create", path, "--repo", repo, "--name", "p")
    for command in (["browse", repo, "--latest", "alice@example.com/Inbox"],
                    ["show", repo, "--latest", "alice@example.com/Inbox", "1"],
                    ["search", repo, "--latest", "--subject", "hello"]):
        printed = run_cps(*command).stdout
        assert b"\x1b" not in printed and b"\x07" not in printed, command
        assert "\u202e".encode() not in printed and b"\\u202egnp.exe" in printed, command


def test_counts_are_singular_for_one(tmp_path: Path) -> None:
    path = make_store(tmp_path, b"Subject: one\r\n\r\nbody\r\n")
    mailboxes = run_cps("store", "ls", path).stdout.decode()
    assert " 1 message " in mailboxes and "messages" not in mailboxes
    folders = run_cps("store", "ls", path, "alice@example.com").stdout.decode().splitlines()
    counts = {line[:40].strip(): line[40:].split()[:2] for line in folders}
    assert counts["Inbox"] == ["1", "message"] and counts["Drafts"] == ["0", "messages"]
    exported = run_cps("store", "export", path, "alice@example.com/Inbox", tmp_path / "out",
                       "--format", "eml").stdout.decode()
    assert exported.startswith("exported 1 message in 1 folder of alice@example.com/Inbox")
    source = tmp_path / "one.eml"
    source.write_bytes(b"Subject: imported\r\n\r\nbody\r\n")
    imported = run_cps("store", "import", path, source, "--mailbox", "alice@example.com").stdout
    assert imported.decode().startswith("imported 1 of 1 message into alice@example.com/Inbox")
    deleted = run_cps("store", "message", "delete", path, "alice@example.com/Inbox", "1").stderr
    assert deleted == b"deleted 1 message\n"


def run_on_terminal(*args: str | Path) -> tuple[int, bytes, bytes]:
    """Run `cps` with stderr on a pseudo-terminal and stdout on a pipe: its exit status, its
    stdout, and all the terminal showed."""
    controller, terminal = os.openpty()
    environment = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "120", "LINES": "40"}
    process = subprocess.Popen([*CPS, *map(str, args)], stdin=subprocess.DEVNULL,
                               stdout=subprocess.PIPE, stderr=terminal, env=environment)
    os.close(terminal)
    shown: list[bytes] = []

    def read_terminal() -> None:
        try:
            while chunk := os.read(controller, 65536):
                shown.append(chunk)
        except OSError:  # EIO: the last holder of the terminal closed it
            pass

    reader = threading.Thread(target=read_terminal)
    reader.start()
    stdout, _ = process.communicate(timeout=600)
    reader.join(timeout=60)
    os.close(controller)
    return process.returncode, stdout, b"".join(shown)


def many_messages(folder: Path, count: int) -> Path:
    folder.mkdir()
    for n in range(count):
        (folder / f"{n:04d}.eml").write_bytes(b"Subject: message %d\r\n\r\n%s\r\n" % (n, b"x" * 2000))
    return folder


def test_import_and_export_draw_progress_on_a_terminal_only(tmp_path: Path) -> None:
    path = make_store(tmp_path)
    source = many_messages(tmp_path / "source", 300)
    status, stdout, terminal = run_on_terminal(
        "store", "import", path, source, "--mailbox", "alice@example.com")
    assert status == 0
    assert b"importing" in terminal and b"%" in terminal
    assert stdout.startswith(b"imported 300 of 300 messages") and b"importing" not in stdout
    status, stdout, terminal = run_on_terminal(
        "store", "export", path, "alice@example.com/Inbox", tmp_path / "out", "--format", "mbox")
    assert status == 0
    assert b"exporting" in terminal and b"%" in terminal
    assert stdout.startswith(b"exported 300 messages")
    # never with --json, never on a pipe
    status, stdout, terminal = run_on_terminal(
        "store", "export", path, "alice@example.com/Inbox", tmp_path / "out2", "--format", "eml",
        "--json")
    assert (status, json.loads(stdout)["messages"], terminal) == (0, 300, b"")
    piped = run_cps("store", "import", path, source, "--mailbox", "alice@example.com",
                    "--folder", "Again")
    assert piped.stderr == b""
