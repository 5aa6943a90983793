"""Running the real `cps server` for tests: its configuration file and tokens, the process
(started on free loopback ports, stopped with SIGTERM or killed with SIGKILL), its API through
httpx, and mail delivered through its intake by a sender that can be paused.

Every wait here polls with a deadline (protect_helpers.DEADLINE_SECONDS); none is a sleep that a
test's correctness relies on.
"""

from __future__ import annotations

import json
import signal
import smtplib
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from cps.repository import Repository
from cps.server.auth import ROLES, TokenStore
from tests.conftest import CPS, run_cps
from tests.integration.intake_helpers import SENDER, make_database, message
from tests.integration.protect_helpers import (
    DEADLINE_SECONDS,
    JsonLinesProcess,
    Reference,
    reference_copy,
)

# Quick syncs, and scheduled points and retention far enough away that none happens in a test.
QUICK_DEFAULTS: dict[str, object] = {"sync_interval": "50ms", "recovery_point_every": "1h",
                                     "prune_every": "off"}


# Configuration and tokens


@dataclass
class Site:
    """What one server is configured with: `folder`/cps.toml, its databases (id: path), each
    with mailboxes, one repository for all of them, and a token of each role."""

    folder: Path
    config: Path
    databases: dict[str, Path]
    repo: Path
    tokens: dict[str, str] = field(default_factory=dict)

    @property
    def state_dir(self) -> Path:
        return self.folder / "state"


def make_site(folder: Path, mailboxes: dict[str, list[str]], **defaults: object) -> Site:
    """Mail databases `folder`/<id>.db with the mailboxes `mailboxes` gives each id, an empty
    repository, and `site_for` them."""
    repo = folder / "repo"
    Repository.init(repo)
    databases = {db_id: make_database(folder / f"{db_id}.db", *addresses)
                 for db_id, addresses in mailboxes.items()}
    return site_for(folder, databases, repo, **defaults)


def site_for(folder: Path, databases: dict[str, Path], repo: Path, **defaults: object) -> Site:
    """A configuration of `databases` (id: path) protected into `repo`, with QUICK_DEFAULTS
    overridden by `defaults`, and a token for each role (named after it; made in this process,
    as `cps server token create` does)."""
    site = Site(folder, write_config(folder, databases, repo, **defaults), databases, repo)
    for role in ROLES:
        site.tokens[role] = TokenStore(site.state_dir).create(role, role)[0]
    return site


def write_config(folder: Path, databases: dict[str, Path], repo: Path,
                 **defaults: object) -> Path:
    """`folder`/cps.toml: every listener on a free loopback port, the state in `folder`/state."""
    values = {"repository": str(repo), **QUICK_DEFAULTS, **defaults}
    lines = ["[server]", 'listen = "127.0.0.1:0"', 'state_dir = "state"', "",
             "[intake]", 'smtp = "127.0.0.1:0"', 'lmtp = "127.0.0.1:0"', "",
             "[defaults]", *(f"{key} = {json.dumps(value)}" for key, value in values.items())]
    for db_id, path in databases.items():
        lines += ["", "[[database]]", f"id = {json.dumps(db_id)}", f"path = {json.dumps(str(path))}"]
    config = folder / "cps.toml"
    config.write_text("\n".join(lines) + "\n")
    return config


def make_token(config: Path, name: str, role: str) -> str:
    """`cps server token create`: the token it prints once."""
    made = run_cps("server", "token", "create", "--config", config, "--name", name, "--role", role,
                   "--json")
    token: str = json.loads(made.stdout)["token"]
    return token


# The server process


class ServerProcess(JsonLinesProcess):
    """`cps server --config CONFIG`, started and waited for until it says it is ready."""

    def __init__(self, site: Site, *options: str, env: Mapping[str, str] | None = None) -> None:
        runs = len(list(site.folder.glob("server-*.stderr")))
        super().__init__([*CPS, "server", "--config", str(site.config), *options],
                         site.folder / f"server-{runs + 1}.stderr", env=env)
        self.site = site
        self.ready = self.wait_for_line(
            lambda lines: next((line for line in lines if line.get("event") == "ready"), None),
            "the server's ready line")

    @property
    def api(self) -> str:
        return str(self.ready["api"])

    def port(self, protocol: str) -> int:
        return int(str(self.ready[protocol]).rpartition(":")[2])

    def client(self, role: str | None = None) -> httpx.Client:
        """A client of the API with the site's token of `role` (none: no token)."""
        headers = {"Authorization": f"Bearer {self.site.tokens[role]}"} if role else {}
        return httpx.Client(base_url=self.api, headers=headers, timeout=DEADLINE_SECONDS)

    def new_client(self, name: str, role: str) -> httpx.Client:
        """A client with a new token `name` of `role`, made by `cps server token create`."""
        token = make_token(self.site.config, name, role)
        return httpx.Client(base_url=self.api, headers={"Authorization": f"Bearer {token}"},
                            timeout=DEADLINE_SECONDS)

    def stop(self) -> None:
        """SIGTERM, as an operator stops it: it must exit 0."""
        self.process.send_signal(signal.SIGTERM)
        status = self.wait()
        assert status == 0, f"cps server exited {status} on SIGTERM:\n{self.stderr()}"

    def log(self) -> str:
        return self.stderr_path.read_text(errors="replace")


@contextmanager
def running(site: Site, *options: str, env: Mapping[str, str] | None = None
            ) -> Iterator[ServerProcess]:
    """A ready server; at the end stopped by SIGTERM (it must exit 0) unless the test stopped it
    already, or killed when the block failed."""
    server = ServerProcess(site, *options, env=env)
    try:
        yield server
    except BaseException:
        server.kill()
        raise
    if server.process.poll() is None:
        server.stop()


# The API


def poll(read: Callable[[], Any], done: Callable[[Any], bool], what: str) -> Any:
    """`read()` again and again until `done` accepts what it returned; that value."""
    deadline = time.monotonic() + DEADLINE_SECONDS
    while True:
        value = read()
        if done(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting until {what}; last: {value!r}")
        time.sleep(0.02)


def answer(response: httpx.Response, status: int) -> Any:
    """The JSON of a response that must have `status`."""
    assert response.status_code == status, f"{response.request.method} {response.request.url}: " \
        f"{response.status_code} {response.text}"
    return response.json()


def status(api: httpx.Client, db_id: str) -> dict[str, Any]:
    found: dict[str, Any] = answer(api.get(f"/api/v1/databases/{db_id}"), 200)
    return found


def protecting(api: httpx.Client, db_id: str, *,
               since: Callable[[dict[str, Any]], bool] = lambda _status: True) -> dict[str, Any]:
    """The status of `db_id` once its protector is capturing (and `since` accepts it)."""
    found: dict[str, Any] = poll(
        lambda: status(api, db_id),
        lambda s: s["protection"]["condition"] == "protecting" and since(s),
        f"{db_id} is protected")
    return found


def captured(api: httpx.Client, db_id: str, txn: int) -> dict[str, Any]:
    """The status of `db_id` once the repository holds transaction `txn` and the protector has
    reported it durable."""
    found: dict[str, Any] = poll(
        lambda: status(api, db_id),
        lambda s: ((s["last_transaction"] or {}).get("txn") or 0) >= txn
        and (s["durable"]["txn"] or 0) >= txn,
        f"{db_id}'s repository holds transaction {txn}")
    return found


def point(api: httpx.Client, db_id: str, name: str) -> dict[str, Any]:
    made: dict[str, Any] = answer(
        api.post(f"/api/v1/databases/{db_id}/recovery-points", json={"name": name}), 201)
    return made


def mail_and_a_point(server: ServerProcess, api: httpx.Client, db_id: str, address: str,
                     name: str) -> dict[str, Any]:
    """`db_id` protected, a message delivered to `address` over LMTP, then a recovery point
    `name`, captured: the point."""
    protecting(api, db_id)
    assert deliver(server, "lmtp", address, message(f"before {name}"))
    made = point(api, db_id, name)
    captured(api, db_id, made["txn"])
    return made


def finished(api: httpx.Client, job: dict[str, Any]) -> dict[str, Any]:
    """The job once it has ended, whichever way."""
    found: dict[str, Any] = poll(lambda: answer(api.get(job["links"]["self"]), 200),
                                 lambda j: j["state"] not in ("queued", "running"),
                                 f"job {job['id']} ends")
    return found


def restore_job(api: httpx.Client, db_id: str, output: Path, **target: object
                ) -> dict[str, Any]:
    """A restore job of `db_id` to `target`, which must succeed; its file downloaded to `output`.
    The finished job."""
    started = answer(api.post(f"/api/v1/databases/{db_id}/restores", json=target), 202)
    job = finished(api, started)
    assert job["state"] == "done", job
    with api.stream("GET", f"/api/v1/jobs/{job['id']}/file") as download:
        assert download.status_code == 200, download.read()
        with output.open("wb") as file:
            for chunk in download.iter_bytes():
                file.write(chunk)
    return job


# Mail through the intake


class Sender:
    """Delivers one message after another to `address`, alternately over LMTP and SMTP, on a
    thread of its own while the block runs, and keeps every message acknowledged with 250.
    `paused()` holds it between two messages, so that nothing is written while a test copies the
    database. A server that goes away ends the sending."""

    def __init__(self, server: ServerProcess, address: str, prefix: str) -> None:
        self.server = server
        self.address = address
        self.prefix = prefix
        self.acknowledged: list[bytes] = []
        self.ended_by: str | None = None  # what ended the sending before the block did
        self._turn = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Sender:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(DEADLINE_SECONDS)

    @contextmanager
    def paused(self) -> Iterator[None]:
        with self._turn:
            yield

    def wait_for(self, count: int) -> None:
        """Until `count` more messages than now are acknowledged."""
        target = len(self.acknowledged) + count
        poll(lambda: len(self.acknowledged), lambda n: n >= target or not self._thread.is_alive(),
             f"{count} more deliveries to {self.address}")
        assert len(self.acknowledged) >= target, f"the sending ended: {self.ended_by}"

    def _run(self) -> None:
        number = 0
        while not self._stop.is_set():
            with self._turn:
                number += 1
                raw = message(f"{self.prefix} {number}")
                try:
                    if deliver(self.server, "lmtp" if number % 2 else "smtp", self.address, raw):
                        self.acknowledged.append(raw)
                except (OSError, smtplib.SMTPException) as error:
                    self.ended_by = repr(error)
                    return


def deliver(server: ServerProcess, protocol: str, address: str, raw: bytes) -> bool:
    """One message over a connection of its own; whether it was acknowledged with 250."""
    if protocol == "lmtp":
        with smtplib.LMTP("127.0.0.1", server.port("lmtp"), timeout=DEADLINE_SECONDS) as lmtp:
            lmtp.ehlo()
            replies = [lmtp.mail(SENDER), lmtp.rcpt(address), lmtp.data(raw)]
            return [code for code, _text in replies] == [250, 250, 250]
    with smtplib.SMTP("127.0.0.1", server.port("smtp"), timeout=DEADLINE_SECONDS) as smtp:
        return smtp.sendmail(SENDER, [address], raw) == {}


# Reference copies of points made through the API


def point_and_copy(api: httpx.Client, site: Site, db_id: str, name: str,
                   sender: Sender | None = None) -> Reference:
    """A recovery point made through the API and a copy of the live database in the same state
    (the sender, if any, held meanwhile)."""
    with sender.paused() if sender else nullcontext():
        made = point(api, db_id, name)
        copy = reference_copy(site.databases[db_id], site.folder / f"{db_id}-{name}.reference.db")
    return Reference(name, copy, made["txn"])


def alive(pid: int) -> bool:
    """Whether process `pid` still exists (a zombie of ours counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rpartition(")")[2].split()[0] != "Z"
    except FileNotFoundError:
        return False


def gone(pid: int) -> None:
    poll(lambda: alive(pid), lambda running: not running, f"process {pid} ended")
