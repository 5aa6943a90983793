"""Progress bars of the long commands: drawn on stderr when it is a terminal, never with --json,
never when stderr is piped, and never on stdout, whose results stay clean."""

from __future__ import annotations

import os
import pty
import select
import signal
import sqlite3
import subprocess
import time
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import CPS, run_cps
from tests.integration.protect_helpers import DEADLINE_SECONDS, protected_store

ALICE = "alice@example.com"
MAIL = {ALICE: [b"From: Carol <carol@example.org>\r\nSubject: Report %d\r\n\r\nText.\r\n" % n
                for n in range(5)]}


@dataclass(frozen=True, slots=True)
class Shown:
    status: int
    stdout: bytes
    terminal: bytes  # everything written to stderr, a terminal


def on_terminal(*args: str | Path) -> Shown:
    """Run `cps` with stderr on a terminal (a pseudo-terminal read here) and stdout piped."""
    controller, terminal = pty.openpty()
    with subprocess.Popen([*CPS, *map(str, args)], stdout=subprocess.PIPE, stderr=terminal,
                          stdin=subprocess.DEVNULL, env={**os.environ, "TERM": "xterm"}) as process:
        os.close(terminal)
        written = _read_until_closed(controller)
        stdout = process.stdout.read() if process.stdout else b""
        status = process.wait(timeout=DEADLINE_SECONDS)
    return Shown(status, stdout, written)


def _read_until_closed(controller: int) -> bytes:
    chunks = []
    try:
        while chunk := os.read(controller, 65536):
            chunks.append(chunk)
    except OSError:  # EIO: every holder of the terminal's other end has closed it
        pass
    finally:
        os.close(controller)
    return b"".join(chunks)


@pytest.fixture(scope="module")
def protected(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return protected_store(tmp_path_factory.mktemp("progress"), MAIL)


def commands(db: Path, repo: Path, folder: Path) -> dict[str, list[str | Path]]:
    """The command lines of each long command, writing what they make into `folder`."""
    point = ["--latest", "--mailbox", ALICE]
    return {
        "restore": ["restore", repo, "--to", folder / "restored.db", "--latest"],
        "recover into": ["recover", repo, *point, "--into", db],
        "recover export": ["recover", repo, *point, "--export", "mbox", folder / "export"],
    }


@pytest.mark.parametrize("name", ["restore", "recover into", "recover export"])
def test_a_bar_is_drawn_on_a_terminal_only(name: str, protected: tuple[Path, Path],
                                           tmp_path: Path) -> None:
    db, repo = protected
    folders = [tmp_path / kind for kind in ("terminal", "json", "piped")]
    for folder in folders:
        folder.mkdir()
    terminal, json_lines, piped = (commands(db, repo, folder)[name] for folder in folders)

    drawn = on_terminal(*terminal)
    assert drawn.status == 0, drawn.terminal.decode(errors="replace")
    assert b"100%" in drawn.terminal and b"\xe2\x94\x81" in drawn.terminal  # the bar, full
    assert b"\x1b" not in drawn.stdout and b"%" not in drawn.stdout

    quiet = on_terminal(*json_lines, "--json")
    assert quiet.status == 0 and quiet.terminal == b""

    result = run_cps(*piped)
    assert result.stderr == b""


def test_the_first_full_backup_of_protect_draws_a_bar_on_a_terminal(tmp_path: Path) -> None:
    db, repo = tmp_path / "big.db", tmp_path / "repo"
    with closing(sqlite3.connect(db)) as connection:
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("CREATE TABLE t (x BLOB)")
        connection.executemany("INSERT INTO t VALUES (randomblob(3000))", [()] * 3000)
        connection.commit()
    run_cps("repo", "init", repo)
    shown = protect_on_terminal(db, repo)
    assert b"full backup" in shown and b"100%" in shown, shown.decode(errors="replace")
    assert b"protect: full-backup " in shown and b"protect: ready" in shown
    quiet = protect_on_terminal(db, repo, "--json")
    assert b"%" not in quiet and b"\x1b" not in quiet


def protect_on_terminal(db: Path, repo: Path, *options: str) -> bytes:
    """What `cps protect` writes on a terminal (its stderr) until it is ready, then stopped."""
    controller, terminal = pty.openpty()
    with subprocess.Popen([*CPS, "protect", str(db), "--repo", str(repo), *options],
                          stdout=subprocess.DEVNULL if not options else subprocess.PIPE,
                          stderr=terminal, stdin=subprocess.DEVNULL,
                          env={**os.environ, "TERM": "xterm"}) as process:
        os.close(terminal)
        shown = b""
        deadline = time.monotonic() + DEADLINE_SECONDS
        ready = b'"event": "ready"' if options else b"protect: ready"
        while ready not in shown and time.monotonic() < deadline:
            if options and process.stdout is not None:
                shown += process.stdout.readline()
            elif select.select([controller], [], [], 1.0)[0]:
                shown += os.read(controller, 65536)
        process.send_signal(signal.SIGTERM)
        on_stdout = shown if options else b""
        shown = (b"" if options else shown) + _read_until_closed(controller)
        assert process.wait(timeout=DEADLINE_SECONDS) == 0, shown.decode(errors="replace")
    assert ready in on_stdout or ready in shown
    return shown


def test_an_import_draws_a_bar_with_its_rate_on_a_terminal(corpus: Path, tmp_path: Path) -> None:
    db = tmp_path / "mail.db"
    run_cps("store", "create", db)
    source = corpus / "enron" / "richey-c"
    drawn = on_terminal("store", "import", db, source, "--mailbox", ALICE, "--create-mailbox")
    assert drawn.status == 0, drawn.terminal.decode(errors="replace")
    assert b"importing" in drawn.terminal and b"100%" in drawn.terminal
    assert b"msg/s" in drawn.terminal and b"B/s" in drawn.terminal
    assert drawn.stdout.startswith(b"imported 582 of 582 messages") and b"\x1b" not in drawn.stdout
