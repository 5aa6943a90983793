"""Running `cps server` for tests: a folder with one mail database, its repository and a
configuration, the server on free loopback ports, and its API with a token."""

from __future__ import annotations

import json
import selectors
import signal
import subprocess
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from cps.repository import Repository
from cps.server.auth import TokenStore
from cps.store import MailDatabase
from tests.conftest import CPS
from tests.integration.protect_helpers import DEADLINE_SECONDS

CONFIG = """\
[server]
listen = "127.0.0.1:0"
state_dir = "state"
[intake]
smtp = "127.0.0.1:0"
lmtp = "off"
[defaults]
repository = "repo"
[[database]]
id = "mail"
path = "mail.db"
"""


@dataclass
class Server:
    """A running `cps server`: its process, its ready line, and a token of `role`."""

    process: subprocess.Popen[bytes]
    ready: dict[str, Any]
    token: str
    log: Path

    def api(self) -> httpx.Client:
        return httpx.Client(base_url=str(self.ready["api"]), timeout=DEADLINE_SECONDS,
                            headers={"Authorization": f"Bearer {self.token}"})


@contextmanager
def running_server(folder: Path, role: str, env: Mapping[str, str] | None = None
                   ) -> Iterator[Server]:
    """`cps server` on a new mail database in `folder` until it is ready; afterwards stopped with
    SIGTERM if it still runs (killed if it does not stop)."""
    MailDatabase.create(folder / "mail.db").close()
    Repository.init(folder / "repo")
    (folder / "cps.toml").write_text(CONFIG)
    token, _record = TokenStore(folder / "state").create("test", role)
    log = folder / "server.log"
    with log.open("wb") as stderr:
        process = subprocess.Popen([*CPS, "server", "--config", str(folder / "cps.toml")],
                                   stdout=subprocess.PIPE, stderr=stderr, env=env)
    try:
        yield Server(process, _ready_line(process, log), token, log)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            process.communicate(timeout=DEADLINE_SECONDS)
        finally:
            process.kill()


def _ready_line(process: subprocess.Popen[bytes], log: Path) -> dict[str, Any]:
    assert process.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        line = process.stdout.readline() if selector.select(DEADLINE_SECONDS) else b""
    assert line, f"cps server never said it was ready:\n{log.read_text()}"
    ready: dict[str, Any] = json.loads(line)
    return ready
