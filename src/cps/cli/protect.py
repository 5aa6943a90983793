"""`cps repo init`, `cps protect` and `cps recovery-point create`."""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from contextlib import ExitStack
from pathlib import Path
from urllib.parse import quote

import click

from ..capture import ProtectOptions
from ..config import Location, parse_duration, parse_duration_or_off, parse_size
from ..errors import UsageError
from ..ops import create_point, protect, set_keep
from ..repository import Repository
from ..repository.naming import check_db_id
from ..repository.storage import ObjectLock
from . import output
from .progress import Reporter, progress_reporter
from .remote import (
    Positional,
    connect,
    pick_server_database,
    repository_and,
    server_options,
    split_words,
)
from .repo_copy import repo_copy_command
from .repo_options import (
    db_option,
    open_repository,
    passphrase_file_option,
    pick_database,
    read_passphrase,
    repository_argument,
    repository_option,
    with_s3_options,
)
from .signals import stop_on_signals, stop_when_input_ends


@click.group("repo")
def repo_group() -> None:
    """Create a backup repository ('cps repo init'), or copy one to another folder or bucket
    ('cps repo copy')."""


repo_group.add_command(repo_copy_command)


@repo_group.command("init")
@repository_argument("path", "PATH")
@click.option("--encrypt", is_flag=True,
              help="Encrypt everything with AES-256-GCM under a key sealed by a passphrase.")
@click.option("--object-lock", metavar="DURATION",
              help="In a bucket with S3 Object Lock: keep every backup file from being deleted "
                   "by anyone for DURATION after it is written (30d, 1w). See docs/storage.md.")
@click.option("--object-lock-mode", type=click.Choice(["compliance", "governance"]),
              default="compliance", show_default=True,
              help="Compliance: nobody can shorten the retention; governance: a user with the "
                   "s3:BypassGovernanceRetention permission can.")
@passphrase_file_option
@output.json_option
def repo_init(path: Location, encrypt: bool, object_lock: str | None, object_lock_mode: str,
              passphrase_file: Path | None, as_json: bool) -> None:
    """Create a repository (a backup-to-disk folder) at PATH, which must be new or empty.

    With --encrypt, the passphrase comes from --passphrase-file, CPS_PASSPHRASE, or a prompt;
    losing it loses the backups.

    Examples:

    \b
      cps repo init /backup/cps
      CPS_PASSPHRASE=... cps repo init /backup/cps-secret --encrypt
      cps repo init s3://locked-bucket/cps --object-lock 30d
    """
    passphrase = read_passphrase(passphrase_file, confirm=True) if encrypt else None
    if encrypt and passphrase is None:
        raise click.UsageError("--encrypt needs a passphrase: --passphrase-file or CPS_PASSPHRASE")
    lock = None if object_lock is None else ObjectLock(
        object_lock_mode.upper(), max(1, round(parse_duration(object_lock))))
    repo = Repository.init(with_s3_options(path), passphrase=passphrase, object_lock=lock)
    result = {"path": str(path), "repository_id": repo.config["repository_id"],
              "encrypted": repo.encrypted, "object_lock": repo.config["object_lock"]}
    output.emit(result, as_json, lambda r: f"created repository {r['path']}"
                + (" (encrypted)" if r["encrypted"] else "")
                + (f" with {r['object_lock']['mode'].lower()} Object Lock for "
                   f"{output.duration(r['object_lock']['seconds'])}" if r["object_lock"] else ""))


def db_id_for(db: Path, db_id: str | None) -> str:
    return check_db_id(db_id if db_id is not None else db.stem)


@click.command("protect")
@click.argument("db", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@repository_option(help="The repository to protect into.")
@click.option("--db-id", help="Name of the database in the repository.  [default: DB's file "
              "name without extension]")
@click.option("--full-every", default="24h", show_default=True,
              help="Interval of full backups. One is also taken sooner (at most every 10 "
                   "minutes) once the pages changed since the last one pass half the "
                   "database, or 256 MiB when that is more.")
@click.option("--recovery-point-every", default="15m", show_default=True,
              help="Interval of scheduled recovery points, or 'off'.")
@click.option("--sync-interval", default="1s", show_default=True,
              help="Longest time a committed transaction waits to be made durable in the "
                   "repository.")
@click.option("--wal-limit", default="1GiB", show_default=True, metavar="SIZE",
              help="While the repository cannot be written (a full disk), let the WAL grow to "
                   "this size, then let it go so the database's disk does not fill; a new chain "
                   "starts when the repository can be written again.")
@click.option("--spool-limit", default="1GiB", show_default=True, metavar="SIZE",
              help="For a repository in a bucket: the most that may wait in the local upload "
                   "spool for the bucket; when it is full, capture rides it out as an outage "
                   "(the WAL held up to --wal-limit).")
@click.option("--report-durable", is_flag=True, hidden=True,
              help="Report 'durable' events (for the server's deliveries acknowledged once "
                   "durable).")
@click.option("--stop-at-end-of-input", is_flag=True, hidden=True,
              help="Also stop as on SIGTERM once standard input ends (the server holds it open "
                   "for as long as it lives, so its protectors stop when it dies).")
@click.option("--new-source", is_flag=True,
              help="Accept DB although the repository protected this id from another path "
                   "(the database was moved, or restored to a new path).")
@passphrase_file_option
@output.json_option
def protect_command(db: Path, repo_path: Location, db_id: str | None, full_every: str,
                    recovery_point_every: str, sync_interval: str, wal_limit: str,
                    spool_limit: str, report_durable: bool, stop_at_end_of_input: bool,
                    new_source: bool, passphrase_file: Path | None, as_json: bool) -> None:
    """Protect a SQLite database (in WAL mode) continuously, in the foreground, until stopped
    with Ctrl-C or SIGTERM: a full backup first, then every committed transaction, full backups
    and recovery points on schedule. On the first signal it makes everything captured durable and
    stops; a second ends it at once (the next start resumes from what is in the repository).

    Events (chains, full backups, recovery points, WAL resets) are printed to stderr, or to
    stdout as JSON lines with --json.

    Examples:

    \b
      cps protect /var/lib/cps/mail01.db --repo /backup/cps
      cps protect mail.db --repo /backup/cps --sync-interval 100ms --full-every 12h
    """
    options = ProtectOptions(full_every=parse_duration(full_every),
                             recovery_point_every=parse_duration_or_off(recovery_point_every),
                             sync_interval=parse_duration(sync_interval),
                             wal_limit=parse_size(wal_limit), spool_limit=parse_size(spool_limit),
                             new_source=new_source,
                             report_durable=report_durable)
    repo = open_repository(repo_path, passphrase_file)
    name = db_id_for(db, db_id)
    with stop_on_signals() as stop:
        if stop_at_end_of_input:
            stop_when_input_ends(stop)
        events = _Events(as_json, stop)
        try:
            protect(db, repo, name, options, stop, events)
        finally:
            events.close()


@click.group("recovery-point")
def point_group() -> None:
    """Named points in time to restore to."""


_POINT_NAME = Positional("name", "NAME")


@point_group.command("create")
@click.argument("db", required=False, type=click.Path(dir_okay=False, exists=True,
                                                     path_type=Path))
@repository_option(help="The repository DB is protected into.", required=False)
@click.option("--db-id", help="Name of the database in the repository.  [default: DB's file "
              "name without extension; with --server, the server's only database]")
@click.option("--name", help="Name of the point.  [default: manual <time>]")
@click.option("--keep", is_flag=True,
              help="Keep the point and what it needs whatever the retention policy, until "
                   "'cps recovery-point keep --off'.")
@passphrase_file_option
@server_options
@output.json_option
def point_create(db: Path | None, repo_path: Location | None, db_id: str | None, name: str | None,
                 keep: bool, passphrase_file: Path | None, server: str | None,
                 token_file: Path | None, as_json: bool) -> None:
    """Mark the current committed position of DB as a recovery point. Works while 'cps protect'
    runs (it answers, having captured everything committed so far) and when it does not (the
    point is captured here and now). With --server, the server's protector of the database
    makes it.

    Examples:

    \b
      cps recovery-point create mail.db --repo /backup/cps --name "before upgrade"
      cps recovery-point create --server http://127.0.0.1:8470 --token-file ~/.cps-token \\
          --db-id mail01 --name "before upgrade"
    """
    client = connect(db if repo_path is None else repo_path, server, token_file, repo_name="DB")
    if client is not None:
        with client:
            result = client.post(f"/api/v1/databases/{pick_server_database(client, db_id)}"
                                 "/recovery-points", {"name": name, "keep": keep})
    else:
        if db is None or repo_path is None:
            raise UsageError("give DB and --repo REPO", hint="Or --server URL --token-file FILE "
                             "to ask a running CPS server.")
        point = create_point(db, open_repository(repo_path, passphrase_file),
                             db_id_for(db, db_id), name, keep=keep)
        result = {"name": point.name, "txn": point.txn, "chain": point.chain,
                  "created_at": point.created_at, "keep": point.keep}
    output.emit(result, as_json, lambda r: f"recovery point {r['name']!r} at transaction {r['txn']}")


@point_group.command("keep")
@repository_and(_POINT_NAME)
@db_option()
@click.option("--off", is_flag=True, help="Let retention decide again.")
@passphrase_file_option
@server_options
@output.json_option
def point_keep(words: tuple[str, ...], db_id: str | None, off: bool,
               passphrase_file: Path | None, server: str | None, token_file: Path | None,
               as_json: bool) -> None:
    """Keep the recovery point NAME (and what it needs) whatever the retention policy, or, with
    --off, let retention decide again.

    Examples:

    \b
      cps recovery-point keep /backup/cps "before upgrade"
      cps recovery-point keep /backup/cps --db mail01 "before upgrade" --off
      cps recovery-point keep --server http://127.0.0.1:8470 --token-file ~/.cps-token \\
          --db mail01 "before upgrade"
    """
    repo_path, arguments = split_words(words, (_POINT_NAME,), server=server)
    name = str(arguments["name"])
    client = connect(repo_path, server, token_file)
    if client is not None:
        with client:
            found = client.patch(f"/api/v1/databases/{pick_server_database(client, db_id)}"
                                 f"/recovery-points/{quote(name, safe='')}", {"keep": not off})
    else:
        assert repo_path is not None
        repo = open_repository(repo_path, passphrase_file)
        point = set_keep(repo, pick_database(repo, db_id), name, not off)
        found = {"name": point.name, "txn": point.txn, "keep": point.keep}
    output.emit({"name": found["name"], "txn": found["txn"], "keep": found["keep"]}, as_json,
                lambda r: f"recovery point {r['name']!r} " + ("kept" if r["keep"] else
                                                               "left to retention"))


class _Events:
    """The protector's events: JSON lines on stdout, or lines for a person on stderr, where the
    progress of a chain's first full backup is a bar on a terminal."""

    def __init__(self, as_json: bool, stop: threading.Event) -> None:
        self.as_json = as_json
        self.stop = stop
        self.bar: Reporter | None = None
        self.bar_context = ExitStack()

    def __call__(self, event: str, fields: dict[str, object]) -> None:
        if self.as_json:
            try:
                click.echo(json.dumps({"event": event, "time": time.time(), **fields}))
            except BrokenPipeError:
                self._reader_gone()
            return
        if event == "full-backup-progress":
            if self.bar is None:
                self.bar = self.bar_context.enter_context(progress_reporter(enabled=True))
            self.bar("full backup", int(str(fields["pages"])), int(str(fields["of"])))
            return
        if event == "full-backup":
            self.close()
        details = " ".join(f"{k}={v}" for k, v in fields.items())
        output.note(f"protect: {event} {details}".rstrip())

    def _reader_gone(self) -> None:
        """Nobody reads the events any more (the server that did was killed): stop as on SIGTERM,
        and send later events, and Python's last flush, nowhere instead of failing again."""
        self.stop.set()
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)

    def close(self) -> None:
        self.bar_context.close()
        self.bar = None
