"""`cps server` under a service manager: it says READY=1 on systemd's NOTIFY_SOCKET once the API
listens, and SIGTERM or SIGINT stops it with exit status 0 after its protectors stopped cleanly."""

from __future__ import annotations

import json
import os
import signal
import socket
import uuid
from pathlib import Path

import pytest

from tests.conftest import run_cps
from tests.integration.protect_helpers import DEADLINE_SECONDS, wait_until
from tests.integration.server_run import make_site, running


def notify_socket(folder: Path, kind: str) -> tuple[socket.socket, str]:
    """A datagram socket standing in for systemd's, and the NOTIFY_SOCKET that names it."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    if kind == "abstract":
        name = f"cps-test-{uuid.uuid4().hex}"
        listener.bind("\0" + name)
        return listener, "@" + name
    listener.bind(str(folder / "notify"))
    return listener, str(folder / "notify")


@pytest.mark.parametrize("signum, kind", [(signal.SIGTERM, "path"), (signal.SIGINT, "abstract")])
def test_the_server_notifies_systemd_and_stops_cleanly(tmp_path: Path, signum: signal.Signals,
                                                       kind: str) -> None:
    listener, address = notify_socket(tmp_path, kind)
    environment = {**os.environ, "NOTIFY_SOCKET": address}
    site = make_site(tmp_path, {"mail": []})
    with listener, running(site, env=environment) as server:
        listener.settimeout(DEADLINE_SECONDS)
        assert listener.recv(100) == b"READY=1"
        with server.client("auditor") as api:
            wait_until(lambda: api.get("/api/v1/databases/mail").json()["protection"]["ready"],
                       "the protector is ready")
        server.process.send_signal(signum)
        assert server.wait() == 0, server.log()
    protector = json.loads(run_cps("timeline", tmp_path / "repo", "--json").stdout)["protector"]
    assert protector["condition"] == "stopped", protector
