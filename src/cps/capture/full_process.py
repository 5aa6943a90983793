"""Full backups made in a child process, so that the protector neither waits for them nor keeps
their memory.

Both kinds of full backup (full_backup.py) read, hash and pack a database's worth of pages. In the
protector's own process a synthesis would hold the interpreter lock for seconds at a time, and
capture, which polls every few milliseconds, would wait behind it while the WAL grows; and either
kind would leave the process tens of megabytes larger, more the larger the database. So they run in
a new interpreter (`python -c`, started by fork and exec with nothing run in between, which is safe
in a threaded process) at a lower CPU priority. The protector keeps the pinned snapshots a live copy
needs (pinning.py); the child only reads files.

The parent writes one JSON request, one line, on the child's stdin and keeps stdin open: the
repository's key travels there, never in argv or the environment. The child answers with one JSON
line on stdout, the full backup it wrote or why it could not, and exits. The child stops when its
stdin closes, so a protector that stops or dies (SIGKILL included) never leaves one running, and on
SIGTERM, which unwinds it so that no temp file is left behind.

The child writes in the repository's order (full_backup.py `_finish`): packs first, then the full
backup file that lists them; into the protector's upload spool when the repository is in a bucket
(repository/storage/spool.py), which numbers the two processes' files in one order. Stopped at any
moment, it leaves at most packs that no full backup lists yet, never a full backup that lists a
missing page. The protector keeps every transaction a synthesised full covers in the log either
way, so a failed full costs a retry, never a transaction.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import IO, Any

from ..errors import CaptureError, CPSError, RepositoryError
from ..repository import FullBackup, FullRef, Repository, WalPosition
from ..repository.crypto import MasterKey
from ..repository.storage import location_fields, location_from, spool_puts, spooling_limit
from .full_backup import FullResult, FullSource, synthesize_full, take_full
from .sqlite_db import DatabaseFile

logger = logging.getLogger(__name__)

CHILD_NICENESS = 10  # added to the protector's own: the child gets the CPU capture leaves
STOP_PATIENCE_SECONDS = 10.0
PROGRESS_SECONDS = 0.25
_CHILD = "from cps.capture.full_process import serve; serve()"
_PASSPHRASE_VARIABLE = "CPS_PASSPHRASE"  # the child has the key; it needs no passphrase


class FullBackupProcess:
    """One full backup being made by a child process."""

    def __init__(self, repo: Repository, db_id: str, txn: int, work: dict[str, Any]) -> None:
        self.txn = txn
        self._process = subprocess.Popen([sys.executable, "-c", _CHILD], stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, env=_child_environment())
        request = {"location": location_fields(repo.location), "db_id": db_id, "txn": txn,
                   "key": _key_fields(repo.key), "spool_limit": spooling_limit(repo.storage),
                   **work}
        with contextlib.suppress(BrokenPipeError):  # it died at once: `result` says how
            _pipe(self._process.stdin).write(json.dumps(request).encode() + b"\n")
            _pipe(self._process.stdin).flush()

    @classmethod
    def synthesize(cls, repo: Repository, db_id: str, previous: FullRef, txn: int,
                   position: WalPosition) -> FullBackupProcess:
        """`synthesize_full` from `previous` and the log after it, up to `txn`."""
        return cls(repo, db_id, txn, {"synthesize": _ref_fields(previous),
                                      "position": _position_fields(position)})

    @classmethod
    def copy(cls, repo: Repository, db_id: str, chain: int, txn: int, source: FullSource,
             previous: FullRef | None) -> FullBackupProcess:
        """`take_full` of the live image `source` describes; its pinned snapshots are the
        caller's to hold until `wait` returns."""
        return cls(repo, db_id, txn, {"copy": {
            "chain": chain, "db": str(source.db.path), "wal": str(source.wal_path),
            "page_size": source.page_size, "db_pages": source.db_pages,
            "page_frames": list(source.page_frames.items()),
            "previous": _ref_fields(previous) if previous is not None else None,
        }, "position": _position_fields(source.position)})

    @property
    def pid(self) -> int:
        return self._process.pid

    def result(self) -> FullResult | None:
        """None while the child runs; the full backup once it is written. CaptureError, saying
        what happened, when the child failed or died."""
        if self._process.poll() is None:
            return None
        answer = _pipe(self._process.stdout).read()
        self._close_pipes()
        return _outcome(answer, self._process.returncode)

    def wait(self, progress: Callable[[int, int], None] | None = None) -> FullResult:
        """The full backup, once written; `progress` hears the child's progress meanwhile (pages
        copied and their total), when the request asked for it."""
        answer = b""
        for line in _pipe(self._process.stdout):
            fields = _json(line)
            if "progress" in fields and progress is not None:
                progress(*fields["progress"])
            elif "progress" not in fields:
                answer = line
        self._process.wait()
        self._close_pipes()
        return _outcome(answer, self._process.returncode)

    def stop(self) -> None:
        """Stop the child (it leaves no partial file) and wait for it."""
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(STOP_PATIENCE_SECONDS)
            except subprocess.TimeoutExpired:
                self._process.kill()
        self._process.wait()
        self._close_pipes()

    def _close_pipes(self) -> None:
        for pipe in (self._process.stdin, self._process.stdout):
            if pipe is not None:
                with contextlib.suppress(BrokenPipeError):  # unsent input to a child that died
                    pipe.close()


def _pipe(stream: IO[bytes] | None) -> IO[bytes]:
    assert stream is not None
    return stream


def _child_environment() -> dict[str, str]:
    # The child must run this very code, wherever this process imported it from.
    source = str(Path(__file__).resolve().parents[2])
    paths = [source, *filter(None, [os.environ.get("PYTHONPATH")])]
    environment = {k: v for k, v in os.environ.items() if k != _PASSPHRASE_VARIABLE}
    environment["PYTHONPATH"] = os.pathsep.join(paths)
    return environment


def _key_fields(key: MasterKey | None) -> list[str] | None:
    return [key.encryption.hex(), key.identification.hex()] if key is not None else None


def _ref_fields(ref: FullRef) -> list[int]:
    return [ref.chain, ref.txn, ref.taken_at]


def _position_fields(position: WalPosition) -> list[int]:
    return [position.checkpoint_seq, position.salt1, position.salt2, position.frame,
            *position.checksum]


def _json(line: bytes) -> dict[str, Any]:
    try:
        fields = json.loads(line)
    except ValueError:
        return {}
    return fields if isinstance(fields, dict) else {}


def _outcome(answer: bytes, status: int) -> FullResult:
    fields = _json(answer)
    if status == 0 and "full" in fields:
        return FullResult(FullRef(*fields["full"]), fields["pages"], fields["pages_stored"],
                          fields["bytes_written"])
    if "error" in fields:
        raise CaptureError(f"the full backup could not be made: {fields['error']}")
    if status < 0:
        raise CaptureError("the process making the full backup was killed by "
                           f"{signal.Signals(-status).name}")
    raise CaptureError(f"the process making the full backup exited with status {status} and no "
                       "result")


# The child's side


def serve() -> None:
    """Read one request on stdin, make that full backup, answer on stdout."""
    signal.signal(signal.SIGTERM, _unwind)
    line = sys.stdin.buffer.readline()
    if not line:
        return  # the protector went away before asking
    threading.Thread(target=_stop_when_stdin_closes, daemon=True).start()
    os.nice(CHILD_NICENESS)
    try:
        result = _make(json.loads(line))
        answer: dict[str, Any] = {
            "full": _ref_fields(result.full), "pages": result.pages,
            "pages_stored": result.pages_stored, "bytes_written": result.bytes_written}
    except CPSError as exc:
        answer = {"error": exc.message}
    except OSError as exc:
        answer = {"error": f"{exc.filename}: {exc.strerror}" if exc.filename else str(exc)}
    sys.stdout.write(json.dumps(answer) + "\n")
    sys.stdout.flush()


def _make(request: dict[str, Any]) -> FullResult:
    key = request["key"]
    repo = Repository.with_key(location_from(request["location"]),
                               MasterKey(bytes.fromhex(key[0]), bytes.fromhex(key[1])) if key else None)
    if request["spool_limit"] is not None:
        spool_puts(repo.storage, request["spool_limit"])
    db_id, txn = request["db_id"], request["txn"]
    seq, salt1, salt2, frame, checksum1, checksum2 = request["position"]
    position = WalPosition(seq, salt1, salt2, frame, (checksum1, checksum2))
    with repo.reader_lock():
        if "synthesize" in request:
            previous = repo.read_full(db_id, FullRef(*request["synthesize"]))
            return synthesize_full(repo, db_id, previous, txn, position)
        copy = request["copy"]
        db = DatabaseFile(Path(copy["db"]))
        try:
            source = FullSource(db, Path(copy["wal"]), copy["page_size"], copy["db_pages"],
                                dict(copy["page_frames"]), position)
            return take_full(repo, db_id, copy["chain"], txn, source,
                             _readable(repo, db_id, copy["previous"]), _progress_lines())
        finally:
            db.close()


def _progress_lines() -> Callable[[int, int], None]:
    """Progress lines for the parent, which reads them while it waits (FullBackupProcess.wait),
    at most every PROGRESS_SECONDS. A live copy is waited for, a synthesis is not, so only a copy
    reports."""
    last = 0.0

    def report(done: int, total: int) -> None:
        nonlocal last
        if time.monotonic() - last >= PROGRESS_SECONDS or done == total:
            last = time.monotonic()
            sys.stdout.write(json.dumps({"progress": [done, total]}) + "\n")
            sys.stdout.flush()

    return report


def _readable(repo: Repository, db_id: str, ref: list[int] | None) -> FullBackup | None:
    """The full backup `ref` names, whose pages a new one need not store again; None when there
    is none or it cannot be read (then every page is stored)."""
    if ref is None:
        return None
    try:
        return repo.read_full(db_id, FullRef(*ref))
    except RepositoryError as exc:
        logger.warning("full backup %s of %s cannot be read (%s); the new one stores every page",
                       ref[1], db_id, exc.message)
        return None


def _unwind(signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def _stop_when_stdin_closes() -> None:
    # The file descriptor itself: a daemon thread blocked in sys.stdin would hold its lock when
    # the interpreter shuts down, which aborts it.
    while os.read(sys.stdin.fileno(), 4096):
        pass
    os.kill(os.getpid(), signal.SIGTERM)
