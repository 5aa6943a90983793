"""Dovecot's LMTP server as a benchmark peer: configured, started and removed by the benchmark itself.

`Dovecot(root, users)` writes its own `dovecot.conf` into `root` (base_dir, state_dir, log and mail all
inside it, nothing from /etc/dovecot), starts `dovecot -c CONF -F` as a child process with one LMTP
listener on a free loopback port, and stops it on exit. Mail goes to `mdbox:ROOT/mail/%u` through a
static userdb that accepts any user and runs as the system `mail` user (Dovecot refuses to deliver as
root). Everything that affects durability (`mail_fsync`, `fsync_disable`, mdbox settings) is left at
Dovecot's defaults: `mail_fsync = optimized` fsyncs each delivered message before the 250 reply.

Needs the Debian packages dovecot-core and dovecot-lmtpd, and root (Dovecot's master must start as
root to switch to the mail user).
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import smtplib
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

from common import terminate

MAIL_USER = "mail"
START_SECONDS = 30.0
STOP_SECONDS = 30.0

CONFIG = """\
protocols = lmtp
listen = 127.0.0.1
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
ssl = no
first_valid_uid = {uid}
first_valid_gid = {gid}
mail_location = mdbox:{root}/mail/%u
passdb {{
  driver = static
  args = nopassword=y
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={root}/mail/%u allow_all_users=yes
}}
service lmtp {{
  inet_listener lmtp {{
    address = 127.0.0.1
    port = {port}
  }}
}}
"""


def free_port() -> int:
    """A TCP port free on 127.0.0.1 at the time of asking."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def version() -> str:
    """The installed Dovecot's version, or "" if there is none."""
    if shutil.which("dovecot") is None:
        return ""
    return subprocess.run(["dovecot", "--version"], capture_output=True, text=True).stdout.strip()


class Dovecot:
    """A running Dovecot LMTP server under `root` (an empty folder), for the life of a `with` block."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.config = root / "dovecot.conf"
        self.ports: dict[str, int] = {}  # protocol -> port, as for CPSServe
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Dovecot:
        mail = pwd.getpwnam(MAIL_USER)
        # Dovecot's unprivileged helper processes must be able to reach base_dir inside root.
        self.root.chmod(0o755)
        (self.root / "mail").mkdir()
        os.chown(self.root / "mail", mail.pw_uid, mail.pw_gid)
        self.ports["lmtp"] = free_port()
        self.config.write_text(
            CONFIG.format(root=self.root, uid=mail.pw_uid, gid=mail.pw_gid, port=self.ports["lmtp"]))
        self._process = subprocess.Popen(
            ["dovecot", "-c", str(self.config), "-F"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            self._wait_ready()
        except BaseException:
            self._stop()
            raise
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop()

    def message_count(self, user: str) -> int:
        """How many messages `user`'s INBOX holds, as doveadm reads them from the mail store."""
        result = subprocess.run(
            ["doveadm", "-c", str(self.config), "mailbox", "status", "-u", user, "messages", "INBOX"],
            capture_output=True, text=True, check=True)
        match = re.search(r"messages=(\d+)", result.stdout)
        if match is None:
            raise RuntimeError(f"unexpected doveadm output: {result.stdout!r}")
        return int(match.group(1))

    def _wait_ready(self) -> None:
        """Poll until the LMTP listener greets, the process exits, or the start deadline passes."""
        assert self._process is not None
        deadline = time.monotonic() + START_SECONDS
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                stderr = self._process.stderr.read().decode(errors="replace") if self._process.stderr else ""
                raise RuntimeError(
                    f"dovecot exited with {self._process.returncode}: {stderr}{self.log_tail()}")
            try:
                with smtplib.LMTP("127.0.0.1", self.ports["lmtp"], timeout=5):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(
            f"dovecot did not listen on 127.0.0.1:{self.ports['lmtp']} in {START_SECONDS} s")

    def _stop(self) -> None:
        if self._process is None:
            return
        terminate(self._process, STOP_SECONDS)
        if self._process.stderr is not None:
            self._process.stderr.close()
        self._process = None

    def log_tail(self, lines: int = 40) -> str:
        """The end of Dovecot's log, to explain a failed measurement."""
        log = self.root / "dovecot.log"
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:]) if log.exists() else ""
