"""`cps store` administration and inspection commands, run as real subprocesses."""

from __future__ import annotations

import json
from pathlib import Path

from cps.store import MailDatabase
from tests.conftest import run_cps

RAW = b"From: Carol <carol@example.org>\r\nSubject: Budget 2027\r\n\r\nSee the figures.\r\n"


def make_store(tmp_path: Path) -> Path:
    path = tmp_path / "mail.db"
    run_cps("store", "create", path)
    run_cps("store", "mailbox", "create", path, "alice@example.com", "--name", "Alice")
    return path


def test_create_refuses_an_existing_file(tmp_path: Path) -> None:
    path = make_store(tmp_path)
    result = run_cps("store", "create", path, check=False)
    assert result.returncode == 3
    assert b"already exists" in result.stderr


def test_folder_and_message_commands(tmp_path: Path) -> None:
    path = make_store(tmp_path)
    run_cps("store", "folder", "create", path, "alice@example.com/Projects/Ünï", "--parents")
    with MailDatabase.open(path) as db:
        db.deliver(RAW, ["alice@example.com"])
    run_cps("store", "message", "flag", path, "alice@example.com/Inbox", "1", "--add", "\\Flagged")
    run_cps("store", "message", "move", path, "alice@example.com/Inbox", "1", "--to", "Projects/Ünï")
    listing = json.loads(run_cps("store", "ls", path, "alice@example.com/Projects/Ünï", "--json").stdout)
    assert [(m["uid"], m["subject"], m["flags"]) for m in listing] == [(1, "Budget 2027", ["\\Flagged"])]
    shown = run_cps("store", "show", path, "alice@example.com/Projects/Ünï", "1", "--raw").stdout
    assert shown == RAW
    run_cps("store", "folder", "rename", path, "alice@example.com/Projects", "Archive")
    tree = json.loads(run_cps("store", "ls", path, "alice@example.com", "--json").stdout)
    assert [f["messages"] for f in tree if f["path"] == ["Archive", "Ünï"]] == [1]
    run_cps("store", "message", "delete", path, "alice@example.com/Archive/Ünï", "1")
    trash = json.loads(run_cps("store", "ls", path, "alice@example.com/Deleted Items", "--json").stdout)
    assert [m["subject"] for m in trash] == ["Budget 2027"]
    run_cps("store", "folder", "delete", path, "alice@example.com/Archive")
    stats = json.loads(run_cps("store", "stats", path, "--json").stdout)
    assert (stats["messages"], stats["folders"]) == (1, 5)


def test_errors_have_codes_hints_and_exit_statuses(tmp_path: Path) -> None:
    path = make_store(tmp_path)
    missing = run_cps("store", "ls", path, "alice@example.com/Inbx", check=False)
    assert missing.returncode == 5
    assert b"error [not-found]: no folder Inbx" in missing.stderr
    assert b"hint: Did you mean 'Inbox'?" in missing.stderr
    hostile = run_cps("store", "folder", "create", path, "alice@example.com/a\x07b", check=False)
    assert hostile.returncode == 7 and b"control characters" in hostile.stderr
    not_a_store = tmp_path / "notes.txt"
    not_a_store.write_text("just text\n" * 500)
    refused = run_cps("store", "ls", not_a_store, check=False)
    assert refused.returncode == 3 and b"not-a-store" in refused.stderr
    assert b"Traceback" not in refused.stderr


def test_dump_is_stable_and_readable(tmp_path: Path) -> None:
    path = make_store(tmp_path)
    with MailDatabase.open(path) as db:
        db.deliver(RAW, ["alice@example.com"], internal_date=86400, flags=["\\Seen"])
    first = run_cps("store", "dump", path).stdout
    run_cps("store", "dump", path, "-o", tmp_path / "dump.txt")
    assert (tmp_path / "dump.txt").read_bytes() == first
    lines = first.decode().splitlines()
    assert lines[0] == "cps-dump 1"
    assert lines[1].startswith('mailbox "alice@example.com" name="Alice" created=')
    expected = f'    message uid=1 date=1970-01-02T00:00:00Z flags="\\\\Seen" size={len(RAW)} sha256='
    assert expected in first.decode()
