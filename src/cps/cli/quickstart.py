"""`cps quickstart`: the CPS server running on sample mail, all of it in one folder.

In FOLDER it writes `cps.toml` (the API, SMTP and LMTP on free loopback ports), a mail database of
generated mail, a repository and an admin token (`admin.token`, mode 0600), and runs
`cps server --config FOLDER/cps.toml` in the foreground, its log in `server.log`. Once the
database is protected it delivers mail over SMTP and LMTP, makes a recovery point, restores it
through the API and proves the restore has exactly the content the database had then; it shows
the timeline, says where to look, and leaves the server running until Ctrl-C or SIGTERM, which
stop it cleanly.

A folder it made holds MARKER; `--fresh` removes the names in MADE there, and nothing else.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import smtplib
import socket
import threading
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import click

from ..client import ServerClient
from ..config import load_config, parse_endpoint
from ..errors import CPSError, RestoreError, ServerError, UsageError
from ..repository import Repository
from ..server.auth import TokenStore
from ..store import MailDatabase
from ..store.dump import dump_lines
from ..store.workload import mailbox_address, run_workload
from .output import counted, note, terminal_safe
from .quickstart_server import ServerProcess, Stopped, until
from .restore import render_timelines
from .signals import stop_on_signals

MARKER = ".cps-quickstart"
MADE = ("cps.toml", "mail.db", "mail.db-wal", "mail.db-shm", "repo", "state", "admin.token",
        "server.log")
DB_ID = "mail"
POINT = "quickstart"
SAMPLE_OPS = 1500
MAILBOXES = 5
DELIVERIES = 3  # messages over SMTP, and as many over LMTP

CONFIG = """\
# Written by `cps quickstart`: the CPS server on sample mail, everything in this folder.
# docs/cps.example.toml shows every key with its default.

[server]
listen = "127.0.0.1:{api}"
state_dir = "state"

[intake]
smtp = "127.0.0.1:{smtp}"
lmtp = "127.0.0.1:{lmtp}"

[defaults]
repository = "repo"
sync_interval = "200ms"
ack_after_capture = true          # answer 250 only once a delivery is durable in the repository

[[database]]
id = "{db_id}"
path = "mail.db"
"""


@click.command("quickstart")
@click.argument("folder", default="quickstart",
                type=click.Path(file_okay=False, path_type=Path))
@click.option("--fresh", is_flag=True,
              help="First remove what an earlier quickstart made in FOLDER (nothing else).")
def quickstart_command(folder: Path, fresh: bool) -> None:
    """Run the CPS server on sample mail, everything in FOLDER (./quickstart unless given, new or
    empty): a mail database of generated mail, protected continuously into a repository, SMTP
    and LMTP intake and the HTTP API on free loopback ports, and an admin token. Once protected,
    mail is delivered, a recovery point made, restored through the API and compared with the
    database as it was; then it says where to look. Ctrl-C or SIGTERM stops it.

    Examples:

    \b
      cps quickstart
      cps quickstart --fresh
      cps quickstart /tmp/cps-demo
    """
    server = ServerProcess(folder / "cps.toml", folder / "server.log")
    with stop_on_signals(then=server.terminate) as stop:
        _prepare(folder, fresh)
        token = _make(folder, stop)
        try:
            if not stop.is_set():
                _run(folder, server, token, stop)
        except (Stopped, ServerError):
            if not stop.is_set():  # the server is unreachable because it was stopped: not news
                raise
        finally:
            status = server.finish()
    if status != 0:
        raise CPSError(f"the server exited with status {status}",
                       hint=f"Its log, {server.log}, says why.")
    note(f"stopped; 'cps server --config {_shell(server.config)}' starts it again")


# The folder


def _prepare(folder: Path, fresh: bool) -> None:
    """`folder`, new or empty, with MARKER in it (what an earlier quickstart made there removed
    first, with `fresh`)."""
    folder.mkdir(exist_ok=True)
    present = {path.name for path in folder.iterdir()}
    if present:
        _clear(folder, present, fresh)
    (folder / MARKER).write_text("made by cps quickstart: 'cps quickstart --fresh' removes "
                                 f"{', '.join(MADE)} and this file, nothing else\n")


def _clear(folder: Path, present: set[str], fresh: bool) -> None:
    """Remove what an earlier quickstart made in `folder` when asked to and it is all there is;
    refuse otherwise, removing nothing."""
    earlier = MARKER in present
    others = sorted(present - {*MADE, MARKER} if earlier else present)
    if others:
        shown = ", ".join(others[:5]) + (", ..." if len(others) > 5 else "")
        kept = "Nothing was removed: --fresh removes only what cps quickstart made. " \
            if fresh else ""
        raise UsageError(f"{folder} holds files cps quickstart did not make: {shown}",
                         hint=f"{kept}Give a new or empty folder.")
    if not fresh:
        raise UsageError(f"{folder} holds an earlier quickstart",
                         hint=f"Run 'cps quickstart --fresh {_shell(folder)}' to remove "
                              "it and start again, or give another folder.")
    for name in (*MADE, MARKER):
        path = folder / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)  # links inside are removed, never followed
        else:
            path.unlink(missing_ok=True)


def _make(folder: Path, stop: threading.Event) -> str:
    """The configuration, the sample mail database, the repository and an admin token (the
    token, also written to admin.token)."""
    api, smtp, lmtp = _free_ports(3)
    (folder / "cps.toml").write_text(CONFIG.format(api=api, smtp=smtp, lmtp=lmtp, db_id=DB_ID))
    config = load_config(folder / "cps.toml")
    _say(f"a mail database of generated mail: {folder / 'mail.db'}")
    MailDatabase.create(folder / "mail.db").close()
    summary = run_workload(folder / "mail.db", ops=SAMPLE_OPS, seed=1, mailboxes=MAILBOXES,
                           stop=stop)
    click.echo(f"   {counted(summary.messages_delivered, 'message')} delivered to "
               f"{counted(MAILBOXES, 'mailbox', 'mailboxes')}, then read, flagged, moved and "
               f"deleted: {counted(summary.total_ops, 'operation')}")
    _say(f"a repository: {folder / 'repo'}")
    Repository.init(folder / "repo")
    _say(f"an admin token for the API: {folder / 'admin.token'}")
    return _admin_token(config.server.state_dir, folder / "admin.token")


def _admin_token(state_dir: Path, path: Path) -> str:
    """A new admin token, written to `path`, which only its owner may read."""
    token, _record = TokenStore(state_dir).create("quickstart", "admin")
    with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as handle:
        handle.write(token + "\n")
    return token


def _free_ports(count: int) -> list[int]:
    """Loopback ports no program listens on now (held together while chosen, so different)."""
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]


# The server, shown


def _run(folder: Path, server: ServerProcess, token: str, stop: threading.Event) -> None:
    _say(f"the server: cps server --config {server.config} (its log: {server.log})")
    where = server.start(stop)
    with ServerClient(str(where["api"]), token) as api:
        until(api, f"/api/v1/databases/{DB_ID}", _protecting, "protection to start", stop)
        click.echo(f"   {DB_ID} is protected: its first full backup is in the repository, and "
                   "every transaction after it will be as it commits")
        _deliver(where)
        _prove(api, folder / "mail.db", stop)
        _say("what the repository can restore (GET /api/v1/databases/mail/timeline)")
        click.echo(terminal_safe(render_timelines(api.get(f"/api/v1/databases/{DB_ID}/timeline"))))
    click.echo(_where_to_look(folder, where))
    server.wait()


def _protecting(status: dict[str, Any]) -> bool:
    return bool(status["protection"]["ready"] and status["durable"]["txn"])


def _deliver(where: dict[str, Any]) -> None:
    """DELIVERIES messages over SMTP to the first mailbox, as many over LMTP to the second."""
    _say(f"mail over SMTP ({where['smtp']}) and LMTP ({where['lmtp']}), each answered once "
         "durable in the repository")
    for protocol, client, to in (("SMTP", smtplib.SMTP, 1), ("LMTP", smtplib.LMTP, 2)):
        endpoint = parse_endpoint(str(where[protocol.lower()]))
        with client(endpoint.host, endpoint.port, timeout=60) as connection:
            for number in range(1, DELIVERIES + 1):
                message = EmailMessage()
                message["From"] = "quickstart@example.org"
                message["To"] = mailbox_address(to)
                message["Subject"] = f"Hello over {protocol}, {number} of {DELIVERIES}"
                message.set_content(f"Delivered by cps quickstart over {protocol}.")
                connection.send_message(message)
    click.echo(f"   {counted(DELIVERIES, 'message')} to {mailbox_address(1)} over SMTP, "
               f"{DELIVERIES} to {mailbox_address(2)} over LMTP")


def _prove(api: ServerClient, db: Path, stop: threading.Event) -> None:
    """A recovery point, restored through the API and compared with the database at the point."""
    _say(f"a recovery point, {POINT!r}, restored and compared with the database as it was")
    before = _dump(db)
    point = api.post(f"/api/v1/databases/{DB_ID}/recovery-points", {"name": POINT})
    if _dump(db) != before:
        raise CPSError("mail arrived while the recovery point was made: the restore cannot be "
                       "compared with the database", hint="Run the quickstart again.")
    job = api.post(f"/api/v1/databases/{DB_ID}/restores", {"recovery_point": POINT})
    done = until(api, f"/api/v1/jobs/{job['id']}",
                 lambda j: j["state"] not in ("queued", "running"), "the restore", stop)
    if done["state"] != "done":
        raise RestoreError(f"the restore of {POINT!r} {done['state']}: "
                           f"{(done['error'] or {}).get('message')}")
    restored = Path(done["result"]["output"])
    if _dump(restored) != before:
        raise RestoreError(f"the restore of {POINT!r}, {restored}, differs from the database "
                           "at the point")
    click.echo(f"   point {POINT!r}: transaction {point['txn']}; its restore, {restored}, has "
               f"exactly the content {db.name} had then")


def _dump(db: Path) -> str:
    with MailDatabase.open(db, readonly=True) as database:
        return "".join(dump_lines(database.connection))


def _where_to_look(folder: Path, where: dict[str, Any]) -> str:
    api = where["api"]
    auth = f'-H "Authorization: Bearer $(cat {_shell(folder / "admin.token")})"'
    rows = [
        ("console", f"{api}/  (sign in with the token below)"),
        ("API", f"{api}  (described at {api}/docs)"),
        ("SMTP", f"{where['smtp']}  (mailboxes {mailbox_address(1)} .. "
                 f"{mailbox_address(MAILBOXES)})"),
        ("LMTP", where["lmtp"]),
        ("token", f"{folder / 'admin.token'}  (admin; more: cps server token create "
                  f"--config {_shell(folder / 'cps.toml')} --name NAME --role auditor)"),
        ("config", str(folder / "cps.toml")),
        ("log", str(folder / "server.log")),
    ]
    examples = [
        f"curl {auth} {api}/api/v1/databases/{DB_ID}",
        f"curl {auth} {api}/api/v1/databases/{DB_ID}/timeline",
        f"curl {auth} -X POST -H 'Content-Type: application/json' -d '{{\"name\": \"mine\"}}' "
        f"{api}/api/v1/databases/{DB_ID}/recovery-points",
        f"curl {auth} {api}/metrics",
        f"cps browse {_shell(folder / 'repo')} --db {DB_ID} --recovery-point {POINT} "
        f"{mailbox_address(1)}",
    ]
    return "\n".join(["", "CPS is running. Where to look:",
                      *(f"  {name:8}{value}" for name, value in rows), "", "Try:",
                      *(f"  {line}" for line in examples), "", "Ctrl-C stops it."])


def _shell(path: Path) -> str:
    return shlex.quote(str(path))


def _say(step: str) -> None:
    click.echo(f"== {step}")
