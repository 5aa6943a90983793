"""`cps server` as a real process for the API tests: its configuration file, tokens made by
`cps server token create`, an HTTP client per token, jobs followed to their end, and a stop by
SIGTERM that must exit 0."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import CPS, run_cps
from tests.integration.protect_helpers import DEADLINE_SECONDS, JsonLinesProcess

JOB_ENDS = ("done", "failed", "cancelled", "interrupted")


def write_config(folder: Path, databases: dict[str, tuple[Path, Path]]) -> Path:
    """`folder`/cps.toml: the API and the intake on free loopback ports, state in
    `folder`/state, and each database id -> (mail database, repository) protected with quick
    syncs and no schedules, so that every point in a test is one the test made."""
    lines = ["[server]", 'listen = "127.0.0.1:0"', f"state_dir = {json.dumps(str(folder / 'state'))}",
             "[intake]", 'smtp = "127.0.0.1:0"', 'lmtp = "127.0.0.1:0"']
    for db_id, (db, repo) in databases.items():
        lines += ["[[database]]", f"id = {json.dumps(db_id)}", f"path = {json.dumps(str(db))}",
                  f"repository = {json.dumps(str(repo))}", 'sync_interval = "50ms"',
                  'recovery_point_every = "off"', 'prune_every = "off"']
    config = folder / "cps.toml"
    config.write_text("\n".join(lines) + "\n")
    return config


class Server(JsonLinesProcess):
    """`cps server --config CONFIG`, once it has said where its API listens."""

    def __init__(self, config: Path) -> None:
        super().__init__([*CPS, "server", "--config", str(config)], config.parent / "server.stderr")
        self.config = config
        ready = self.wait_for_line(lambda lines: lines[0] if lines else None, "the ready line")
        assert ready["event"] == "ready", ready
        self.api: str = ready["api"]

    def client(self, name: str, role: str) -> httpx.Client:
        """A client with a new token of `role`, made by the command line."""
        made = run_cps("server", "token", "create", "--config", self.config, "--name", name,
                       "--role", role, "--json")
        token = json.loads(made.stdout)["token"]
        return httpx.Client(base_url=self.api, timeout=DEADLINE_SECONDS,
                            headers={"Authorization": f"Bearer {token}"})

    def stop(self) -> None:
        """Stop it as an operator does (SIGTERM): it must exit 0."""
        self.process.send_signal(signal.SIGTERM)
        status = self.wait()
        assert status == 0, f"cps server exited {status} on SIGTERM:\n{self.stderr()}"


@contextmanager
def running_server(config: Path) -> Iterator[Server]:
    """A server whose API is up; stopped by SIGTERM at the end (it must exit 0), or killed when
    the block failed."""
    server = Server(config)
    try:
        yield server
    except BaseException:
        server.kill()
        raise
    server.stop()


def poll(read: Callable[[], Any], done: Callable[[Any], bool], what: str) -> Any:
    """Call `read` until `done` says its answer is the one; fail after the deadline."""
    deadline = time.monotonic() + DEADLINE_SECONDS
    while True:
        answer = read()
        if done(answer):
            return answer
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting until {what}; last: {answer}")
        time.sleep(0.02)


def protecting(client: httpx.Client, db_id: str) -> None:
    """Wait until the server's protector of `db_id` captures."""
    poll(lambda: client.get(f"/api/v1/databases/{db_id}").json(),
         lambda status: status["protection"]["ready"], f"the protector of {db_id} is ready")


def finished_job(client: httpx.Client, accepted: httpx.Response) -> dict[str, Any]:
    """The job a 202 answer started, once it has ended."""
    assert accepted.status_code == 202, accepted.text
    link = accepted.json()["links"]["self"]
    job: dict[str, Any] = poll(lambda: client.get(link).json(),
                               lambda job: job["state"] in JOB_ENDS, f"job {link} ends")
    return job
