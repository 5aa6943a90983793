"""`cps quickstart` as a newcomer runs it: a real process, then the URL, ports and token it prints
used as they are, over real sockets."""

from __future__ import annotations

import json
import os
import re
import selectors
import signal
import smtplib
import stat
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import CPS, run_cps
from tests.integration.intake_helpers import inbox_raws
from tests.integration.protect_helpers import DEADLINE_SECONDS, wait_until

LAST_LINE = b"Ctrl-C stops it.\n"


@dataclass
class Running:
    """A `cps quickstart` process that has said where to look, and what it said."""

    process: subprocess.Popen[bytes]
    output: str
    folder: Path

    def shown(self, name: str) -> str:
        """The value of a "where to look" row: `API`, `SMTP`, `token`, ..."""
        found = re.search(rf"^  {name} +(\S+)", self.output, re.MULTILINE)
        assert found, f"no {name} row in:\n{self.output}"
        return found[1]

    def api(self) -> httpx.Client:
        token = Path(self.shown("token")).read_text().strip()
        return httpx.Client(base_url=self.shown("API"), timeout=DEADLINE_SECONDS,
                            headers={"Authorization": f"Bearer {token}"})

    def stop(self, signum: signal.Signals) -> str:
        """Stop it with `signum`; it must exit 0. What it printed on stderr."""
        self.process.send_signal(signum)
        _out, err = self.process.communicate(timeout=DEADLINE_SECONDS)
        assert self.process.returncode == 0, err.decode(errors="replace")
        return err.decode()


@contextmanager
def quickstart(folder: Path, *options: str) -> Iterator[Running]:
    """`cps quickstart FOLDER` until it has said where to look; killed if the test fails."""
    process = subprocess.Popen([*CPS, "quickstart", str(folder), *options],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        yield Running(process, _read_until_ready(process), folder)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate(timeout=DEADLINE_SECONDS)


def _read_until_ready(process: subprocess.Popen[bytes]) -> str:
    assert process.stdout is not None
    output = b""
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        while not output.endswith(LAST_LINE):
            ready = selector.select(DEADLINE_SECONDS)
            chunk = os.read(process.stdout.fileno(), 65536) if ready else b""
            if not chunk:
                process.kill()
                _out, err = process.communicate(timeout=DEADLINE_SECONDS)
                raise AssertionError(f"cps quickstart never said where to look:\n"
                                     f"{output.decode()}\n{err.decode()}")
            output += chunk
    return output.decode()


def restored(api: httpx.Client, target: dict[str, Any]) -> Path:
    """A restore through the API, once its job is done: the restored file."""
    job = api.post("/api/v1/databases/mail/restores", json=target)
    assert job.status_code == 202, job.text
    url = f"/api/v1/jobs/{job.json()['id']}"
    wait_until(lambda: api.get(url).json()["state"] not in ("queued", "running"), "the restore")
    done = api.get(url).json()
    assert done["state"] == "done", done
    return Path(done["result"]["output"])


def test_a_quickstart_protects_its_mail_and_says_where_to_look(tmp_path: Path) -> None:
    folder = tmp_path / "quickstart"
    with quickstart(folder) as running:
        assert "has exactly the content mail.db had then" in running.output
        assert stat.S_IMODE(os.stat(running.shown("token")).st_mode) == 0o600
        with running.api() as api:
            status = api.get("/api/v1/databases/mail").json()
            assert status["protection"]["condition"] == "protecting"
            timeline = api.get("/api/v1/databases/mail/timeline").json()
            assert [p["name"] for p in timeline["recovery_points"]] == ["quickstart"]

            message = EmailMessage()
            message["From"], message["To"] = "newcomer@example.org", "user003@example.com"
            message["Subject"] = "Captured, I hope"
            message.set_content("Sent to the SMTP port the quickstart printed.")
            host, port = running.shown("SMTP").rsplit(":", 1)
            with smtplib.SMTP(host, int(port), timeout=DEADLINE_SECONDS) as smtp:
                smtp.send_message(message)  # answered once durable: ack_after_capture
            latest = restored(api, {"latest": True})
        assert any(b"Subject: Captured, I hope" in raw
                   for raw in inbox_raws(latest, "user003@example.com"))
        token = Path(running.shown("token")).read_text().strip()
        with httpx.Client(base_url=running.shown("console")) as browser:
            signed_in = browser.post("/login", data={"token": token})
            assert signed_in.status_code == 303 and "cps_session" in signed_in.headers["set-cookie"]
            assert "Protected databases" in browser.get("/").text
        assert "stopped" in running.stop(signal.SIGINT)
    protector = json.loads(run_cps("timeline", folder / "repo", "--json").stdout)["protector"]
    assert protector["condition"] == "stopped", protector


def test_a_second_quickstart_in_the_same_folder_needs_fresh(tmp_path: Path) -> None:
    folder = tmp_path / "quickstart"
    with quickstart(folder) as first:
        old_token = Path(first.shown("token")).read_text()
        first.stop(signal.SIGTERM)
    again = run_cps("quickstart", folder, check=False)
    assert again.returncode == 2
    assert again.stderr.decode().splitlines() == [
        f"cps: error [usage]: {folder} holds an earlier quickstart",
        f"hint: Run 'cps quickstart --fresh {folder}' to remove it and start again, or give "
        "another folder."]
    with quickstart(folder, "--fresh") as second, second.api() as api:
        assert api.get("/api/v1/databases/mail").json()["protection"]["condition"] == \
            "protecting"
        jobs = api.get("/api/v1/jobs").json()
        assert len(jobs) == 1  # the first run's restore went with its state
        refused = api.get("/api/v1/jobs", headers={"Authorization": f"Bearer {old_token.strip()}"})
        assert refused.status_code == 401
        second.stop(signal.SIGINT)


@pytest.mark.parametrize("fresh", [False, True])
def test_quickstart_leaves_alone_a_folder_it_did_not_make(tmp_path: Path, fresh: bool) -> None:
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "mail.db").write_text("not the quickstart's")
    result = run_cps("quickstart", folder, *(["--fresh"] if fresh else []), check=False)
    assert result.returncode == 2
    lines = result.stderr.decode().splitlines()
    assert lines[0] == f"cps: error [usage]: {folder} holds files cps quickstart did not make: " \
                       "mail.db"
    assert ("Nothing was removed" in lines[1]) == fresh
    assert [p.name for p in folder.iterdir()] == ["mail.db"]


def test_fresh_removes_nothing_when_a_quickstart_folder_holds_more(tmp_path: Path) -> None:
    folder = tmp_path / "quickstart"
    folder.mkdir()
    (folder / ".cps-quickstart").write_text("made by cps quickstart\n")
    (folder / "cps.toml").write_text("")
    (folder / "mine.txt").write_text("mine")
    result = run_cps("quickstart", folder, "--fresh", check=False)
    assert result.returncode == 2
    assert "did not make: mine.txt" in result.stderr.decode()
    assert sorted(p.name for p in folder.iterdir()) == [".cps-quickstart", "cps.toml", "mine.txt"]
