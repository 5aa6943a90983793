"""What the console tests share: a server protecting a store of real mail, a hostile message
in it, a trap server that counts any request a preview makes, and a headless Chromium.

The store: alice has ALLEN's `straw` and `notes_inbox` under Projects and the hostile message in
her Inbox; bob has a few messages. The recovery point `before-delete` is made, then
alice/Projects is deleted: the folder the browser recovers.
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from cps.store import MailDatabase
from cps.store.transfer import Format, import_mail
from tests.conftest import CORPUS, run_cps
from tests.integration.protect_helpers import new_store
from tests.integration.server_run import (
    ServerProcess,
    captured,
    point,
    protecting,
    running,
    site_for,
)

ALICE, BOB = "alice@example.com", "bob@example.com"
ALLEN = CORPUS / "enron" / "allen-p"
PROJECTS = ("straw", "notes_inbox")
HUGE_HEADER = 300_000  # characters of the hostile message's To


class Trap:
    """An HTTP server on a free loopback port that records every request it gets."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        trap = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (the name http.server calls)
                trap.requests.append(self.path)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def hostile_message(trap: str) -> bytes:
    """HTML mail that would run a script, call home and load remote content if it could."""
    html = f"""<html><head><link rel="stylesheet" href="{trap}/style.css">
<style>body {{ background: url({trap}/background.png); }}</style></head>
<body onload="document.body.dataset.pwned = 'onload'">
<script>document.body.dataset.pwned = 'script'; fetch('{trap}/script');</script>
<p>Dear customer, <a href="javascript:document.body.dataset.pwned='link'">click here</a>.</p>
<img src="{trap}/pixel.png" alt="pixel"><img src="x" onerror="document.body.dataset.pwned='img'">
<iframe src="{trap}/frame"></iframe><object data="{trap}/object"></object>
<div style="background-image: url({trap}/div.png)">Invoice attached</div>
<form action="{trap}/form"><input name="q"></form>
</body></html>"""
    text = "Plain text part <script>document.body.dataset.pwned = 'text'</script>"
    boundary = "b0undary"
    crowd = ", ".join(f"victim{n}@example.com" for n in range(HUGE_HEADER // 24))
    return (f"From: Mallory <mallory@evil.example>\r\nTo: {ALICE}, {crowd}\r\n"
            f"Subject: Hostile <img src='{trap}/subject.png'> offer\r\n"
            f"Message-ID: <hostile@evil.example>\r\nMIME-Version: 1.0\r\n"
            f"Content-Type: multipart/alternative; boundary={boundary}\r\n\r\n"
            f"--{boundary}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{text}\r\n"
            f"--{boundary}\r\nContent-Type: text/html; charset=utf-8\r\n\r\n{html}\r\n"
            f"--{boundary}--\r\n").encode()


@dataclass
class ConsoleSite:
    server: ServerProcess
    db: Path
    trap: Trap
    before_delete: int  # the recovery point's transaction

    @property
    def base(self) -> str:
        return self.server.api

    def token(self, role: str) -> str:
        return self.server.site.tokens[role]

    @contextmanager
    def signed_in(self, role: str) -> Iterator[httpx.Client]:
        """An HTTP client signed in to the console as `role` (its cookie set, no token sent)."""
        with httpx.Client(base_url=self.base, timeout=60.0) as client:
            answered = client.post("/login", data={"token": self.token(role)})
            assert answered.status_code == 303, answered.text
            yield client

    def csrf(self, client: httpx.Client) -> str:
        page = client.get("/").text
        return page.split('name="csrf" value="', 1)[1].split('"', 1)[0]


@pytest.fixture(scope="session")
def console_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsoleSite]:
    if not (CORPUS / "README.md").is_file():
        pytest.skip(f"the mail corpus is not at {CORPUS} (set CPS_CORPUS)")
    folder = tmp_path_factory.mktemp("console")
    db, repo = folder / "mail.db", folder / "repo"
    new_store(db, repo)
    make_database_mail(db)
    trap = Trap()
    with MailDatabase.open(db) as live:
        live.deliver(hostile_message(trap.url), [ALICE])
    site = site_for(folder, {"mail": db}, repo, recovery_point_every="off")
    with running(site) as server, server.client("operator") as api:
        protecting(api, "mail")
        made = point(api, "mail", "before-delete")
        run_cps("store", "folder", "delete", db, f"{ALICE}/Projects")
        captured(api, "mail", made["txn"] + 1)
        yield ConsoleSite(server, db, trap, made["txn"])
    trap.close()


def make_database_mail(db: Path) -> None:
    with MailDatabase.open(db) as live:
        for address in (ALICE, BOB):
            live.create_mailbox(address)
        for name in PROJECTS:
            import_mail(live, ALLEN / name, ALICE, ("Projects", name), kind=Format.EML)
        import_mail(live, ALLEN / "inbox", BOB, ("Inbox",), kind=Format.EML)


def project_files() -> list[bytes]:
    return [f.read_bytes() for name in PROJECTS for f in sorted((ALLEN / name).iterdir())]


# The browser


def chromium_path() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's Chromium, headless, driven by Playwright, for one module: Playwright's
    synchronous API keeps an event loop running in this thread while it is open, and tests
    after it that run one of their own (asyncio.run) must not meet it."""
    executable = chromium_path()
    if executable is None:
        pytest.skip("chromium is not installed: scripts/system-packages installs it (as root)")
    from playwright.sync_api import sync_playwright
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        yield launched
        launched.close()

