"""What the protection tests share: `cps protect` as a real process, the workload, recovery points
and restores through the CLI, reference copies, and the logical compare of two SQLite databases.

The live database is only ever read here through read-only SQLite connections (the backup API for
reference copies): they never checkpoint or delete its WAL when they close, and the tests are about
what the application and CPS do to that WAL. Every comparison is made on files nobody writes any
more: reference copies and restored databases.
"""

from __future__ import annotations

import json
import random
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import closing, contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from cps.config import Location
from cps.repository import Repository
from cps.store import MailDatabase
from cps.store.dump import dump_lines
from tests.conftest import CPS, run_cps

# How long a process may take to get somewhere before the test gives up on it: a deadline for
# polling, never a bound the test asserts.
DEADLINE_SECONDS = 120.0
# Quick syncs and no scheduled recovery points, so every point in a test is one the test made.
QUICK = ("--sync-interval", "50ms", "--recovery-point-every", "off")
WITHOUT_ROWID = re.compile(r"\)\s*WITHOUT\s+ROWID\s*$", re.IGNORECASE)


# Processes that print JSON lines


class JsonLinesProcess:
    """A process whose stdout is one JSON document per line, read by a thread as they come, so
    that a test can wait for a line with a deadline."""

    def __init__(self, args: list[str], stderr_path: Path, *, stdin: bool = False,
                 env: Mapping[str, str] | None = None) -> None:
        self.stderr_path = stderr_path
        self._stderr = stderr_path.open("ab")
        self.process = subprocess.Popen(
            args, stdout=subprocess.PIPE, stderr=self._stderr,
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL, env=env,
        )
        self.lines: list[dict[str, Any]] = []
        self._ended = False
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read_lines, daemon=True)
        self._reader.start()

    def _read_lines(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            with self._changed:
                self.lines.append(json.loads(line))
                self._changed.notify_all()
        with self._changed:
            self._ended = True
            self._changed.notify_all()

    def wait_for_line(self, wanted: Callable[[list[dict[str, Any]]], dict[str, Any] | None],
                      what: str) -> dict[str, Any]:
        """The line `wanted` picks from those read so far, once there is one."""
        deadline = time.monotonic() + DEADLINE_SECONDS
        with self._changed:
            while True:
                found = wanted(self.lines)
                if found is not None:
                    return found
                remaining = deadline - time.monotonic()
                if self._ended or remaining <= 0:
                    raise AssertionError(f"{what} never came; lines: {self.lines[-20:]}\n"
                                         f"stderr:\n{self.stderr()}")
                self._changed.wait(remaining)

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")[-4000:]

    def kill(self) -> None:
        """SIGKILL, unless it already ended; waits for the process either way."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.wait()

    def wait(self) -> int:
        status = self.process.wait(timeout=DEADLINE_SECONDS)
        self._reader.join(timeout=DEADLINE_SECONDS)
        for pipe in (self.process.stdin, self.process.stdout):
            if pipe is not None:
                with suppress(BrokenPipeError):  # unsent input to a process that died
                    pipe.close()
        self._stderr.close()
        return status


# The protector


class ProtectorProcess(JsonLinesProcess):
    """`cps protect DB --repo REPO --json` in a process of its own."""

    def __init__(self, db: Path, repo: Location, *options: str) -> None:
        super().__init__([*CPS, "protect", str(db), "--repo", str(repo), "--json", *options],
                         db.parent / "protect.stderr")

    def wait_for(self, name: str, count: int = 1) -> dict[str, Any]:
        """The `count`-th event called `name`, once the protector has printed it."""
        def pick(lines: list[dict[str, Any]]) -> dict[str, Any] | None:
            found = [line for line in lines if line["event"] == name]
            return found[count - 1] if len(found) >= count else None
        return self.wait_for_line(pick, f"cps protect's {name!r} event #{count}")

    def named(self, name: str) -> list[dict[str, Any]]:
        return [event for event in self.lines if event["event"] == name]

    def stop(self) -> dict[str, Any]:
        """Stop it as an operator does (SIGTERM); it must exit 0 and report where it stopped."""
        self.process.send_signal(signal.SIGTERM)
        status = self.wait()
        assert status == 0, f"cps protect exited {status} on SIGTERM:\n{self.stderr()}"
        return self.wait_for("stopped")


@contextmanager
def protecting(db: Path, repo: Location, *options: str) -> Iterator[ProtectorProcess]:
    """A protector that is ready (its first full backup done, or its chain resumed); killed at the
    end unless the test stopped it."""
    protector = ProtectorProcess(db, repo, *options)
    try:
        protector.wait_for("ready")
        yield protector
    finally:
        protector.kill()


# The application


APPLICATION = r"""
import json, sys
from pathlib import Path
from cps.store import MailDatabase, folders, messages, parse_message
from cps.store.workload import OperationLog, WorkloadGenerator

db = MailDatabase.open(sys.argv[1])
log = OperationLog(Path(sys.argv[3])) if sys.argv[3] else None
generator = WorkloadGenerator(db, seed=int(sys.argv[2]), log=log)

def checkpoint(mode):
    busy, frames, done = db.connection.execute(f"PRAGMA wal_checkpoint({mode})").fetchone()
    return {"busy": busy, "frames": frames, "checkpointed": done}

def hang():
    # A write transaction bigger than the page cache: SQLite spills its pages into the WAL
    # before any commit. It stays open until the process is killed.
    db.connection.execute("PRAGMA cache_size=8")
    parsed = parse_message(b"Subject: never committed\r\n\r\n" + b"x" * 2_000_000)
    with db.write() as c:
        body = messages.store_body(c, parsed)
        inbox = folders.role_folder(c, folders.live_mailbox(c, generator.addresses[0]), "inbox")
        messages.place(c, inbox.id, body, 0)
        print(json.dumps({"inside": True}), flush=True)
        sys.stdin.read()

def spill_and_roll_back():
    db.connection.execute("PRAGMA cache_size=8")
    parsed = parse_message(b"Subject: rolled back\r\n\r\n" + b"y" * 2_000_000)
    db.connection.execute("BEGIN IMMEDIATE")
    messages.store_body(db.connection, parsed)
    db.connection.execute("ROLLBACK")
    db.connection.execute("PRAGMA cache_size=-2000")
    return {"rolled_back": True}

for line in sys.stdin:
    command = json.loads(line)
    if "ops" in command and command.get("truncate"):
        generator.create_mailboxes()
        results = []
        for _ in range(command["ops"]):
            generator.step()
            results.append(checkpoint("TRUNCATE"))
        answer = {"checkpoints": results}
    elif "ops" in command:
        answer = generator.run(ops=command["ops"], rate=command.get("rate")).to_json()
    elif "checkpoint" in command:
        answer = checkpoint(command["checkpoint"])
    elif "spill" in command:
        answer = spill_and_roll_back()
    else:
        hang()
    print(json.dumps(answer), flush=True)
if log is not None:
    log.close()
db.close()
"""


class Application(JsonLinesProcess):
    """The mail application: one process holding one connection to the database for its whole
    life, running workload operations when told (a JSON command a line, a JSON answer a line)."""

    def __init__(self, db: Path, *, seed: int, log: Path | None = None) -> None:
        super().__init__([sys.executable, "-c", APPLICATION, str(db), str(seed), str(log or "")],
                         db.parent / "application.stderr", stdin=True)
        self.sent = 0

    def send(self, **command: Any) -> int:
        """Send a command without waiting; the number of its answer."""
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(command).encode() + b"\n")
        self.process.stdin.flush()
        self.sent += 1
        return self.sent

    def answer(self, number: int) -> dict[str, Any]:
        return self.wait_for_line(lambda lines: lines[number - 1] if len(lines) >= number else None,
                                  f"the application's answer #{number}")

    def run(self, **command: Any) -> dict[str, Any]:
        return self.answer(self.send(**command))

    def close(self) -> None:
        """Close its connection and exit, as an application that shuts down cleanly."""
        assert self.process.stdin is not None
        self.process.stdin.close()
        status = self.wait()
        assert status == 0, f"the application exited {status}:\n{self.stderr()}"


@contextmanager
def application(db: Path, *, seed: int, log: Path | None = None) -> Iterator[Application]:
    app = Application(db, seed=seed, log=log)
    try:
        yield app
    finally:
        app.kill()


# The application's side: databases and the workload


def new_store(db: Path, repo: Location) -> None:
    """An empty mail database (its WAL gone with its only connection) and an empty repository."""
    MailDatabase.create(db).close()
    Repository.init(repo)


def oracle_store(folder: Path) -> tuple[Path, Path, Oracle]:
    """`folder`/mail.db, empty, `folder`/repo, and an oracle for them."""
    db, repo = folder / "mail.db", folder / "repo"
    new_store(db, repo)
    return db, repo, Oracle(db, repo, folder)


def protected_store(folder: Path, mail: dict[str, list[bytes]], *, ops: int = 0) -> tuple[Path, Path]:
    """`folder`/mail.db with a mailbox for each address of `mail` and its messages delivered,
    then `ops` workload operations, all captured by `cps protect` into `folder`/repo; the
    protector is stopped again. The database and the repository."""
    db, repo = folder / "mail.db", folder / "repo"
    new_store(db, repo)
    with MailDatabase.open(db) as database:
        for address, messages in mail.items():
            database.create_mailbox(address, "")
            for raw in messages:
                database.deliver(raw, [address])
    with protecting(db, repo, *QUICK) as protector:
        if ops:
            workload(db, ops=ops, seed=1)
        protector.stop()
    return db, repo


def workload(db: Path, *, ops: int, seed: int) -> dict[str, Any]:
    """Run `cps store workload` in a process of its own, to the end; its summary."""
    result = run_cps("store", "workload", db, "--ops", str(ops), "--seed", str(seed), "--json")
    summary: dict[str, Any] = json.loads(result.stdout)
    return summary


def start_workload(db: Path, *, ops: int, seed: int, rate: float, log: Path
                   ) -> subprocess.Popen[bytes]:
    """`cps store workload` paced at `rate` operations a second, running while the test goes on."""
    return subprocess.Popen(
        [*CPS, "store", "workload", str(db), "--ops", str(ops), "--seed", str(seed),
         "--rate", str(rate), "--log", str(log)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )


def finish(process: subprocess.Popen[bytes]) -> None:
    """Wait for a background process that must succeed."""
    _out, err = process.communicate(timeout=DEADLINE_SECONDS)
    assert process.returncode == 0, f"{process.args!r} exited {process.returncode}:\n{err.decode()}"


def log_lines(log: Path) -> int:
    try:
        return log.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def logged(log: Path, lines: int) -> Callable[[], bool]:
    """The condition that the workload's log holds `lines` records."""
    return lambda: log_lines(log) >= lines


def wait_until(condition: Callable[[], object], what: str) -> None:
    """Poll `condition()` until it is true; fail after the deadline, saying what never happened."""
    deadline = time.monotonic() + DEADLINE_SECONDS
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting until {what}")
        time.sleep(0.005)


def read_only(db: Path) -> sqlite3.Connection:
    """A connection that can read a live database and never checkpoints or deletes its WAL."""
    return sqlite3.connect(f"file:{quote(str(db.resolve()))}?mode=ro", uri=True)


def reference_copy(db: Path, dest: Path) -> Path:
    """A copy of the live database as of one instant, by SQLite's backup API in one step (one read
    transaction, so one committed state)."""
    with closing(read_only(db)) as source, closing(sqlite3.connect(dest)) as target:
        source.backup(target)
    return dest


# The CLI: recovery points, restores, the timeline


def create_point(db: Path, repo: Location, name: str) -> int:
    """`cps recovery-point create`; the transaction the point is at."""
    result = run_cps("recovery-point", "create", db, "--repo", repo, "--name", name, "--json")
    txn: int = json.loads(result.stdout)["txn"]
    return txn


def restore(repo: Location, output: Path, *target: str) -> dict[str, Any]:
    """`cps restore REPO --to OUTPUT TARGET...`, which must succeed; its JSON result."""
    result = run_cps("restore", repo, "--to", output, "--json", *target)
    answer: dict[str, Any] = json.loads(result.stdout)
    return answer


def restore_refused(repo: Path, output: Path, *target: str) -> subprocess.CompletedProcess[bytes]:
    """A restore that must fail: it leaves no output behind."""
    result = run_cps("restore", repo, "--to", output, *target, check=False)
    assert result.returncode != 0, f"restore {target} succeeded: {result.stdout.decode()}"
    assert not output.exists() and not Path(f"{output}.partial").exists()
    return result


def timeline(repo: Location) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(run_cps("timeline", repo, "--json").stdout)
    return result


def at_argument(ms: int) -> str:
    """An --at TIME naming exactly millisecond `ms` (half a millisecond in, so that no float
    rounding on the way can move it to the millisecond before)."""
    when = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=ms * 1000 + 500)
    return when.isoformat()


# Comparing databases


def integrity(db: Path) -> list[str]:
    with closing(_immutable(db)) as connection:
        return [row[0] for row in connection.execute("PRAGMA integrity_check")]


def dump(db: Path) -> str:
    """The canonical logical dump of a mail database: what `cps store dump` prints, made by the
    same function in this process (a process per dump would double the time of every check)."""
    with MailDatabase.open(db, readonly=True) as database:
        return "".join(dump_lines(database.connection))


def database_diff(expected: Path, actual: Path, limit: int = 12) -> str:
    """Every difference between two SQLite files, row by row, in words; empty when they hold the
    same schema and the same rows in every table (the FTS5 shadow tables included, as ordinary
    tables; a virtual table itself is read through them)."""
    with closing(_immutable(expected)) as a, closing(_immutable(actual)) as b:
        schema_a, schema_b = _schema(a), _schema(b)
        lines = [f"schema: only in {expected.name}: {row}" for row in schema_a if row not in schema_b]
        lines += [f"schema: only in {actual.name}: {row}" for row in schema_b if row not in schema_a]
        for kind, name, _table, sql in schema_a:
            if kind != "table" or sql.upper().startswith("CREATE VIRTUAL") or \
                    (kind, name, _table, sql) not in schema_b:
                continue
            lines += _table_diff(name, _rows(a, name, sql), _rows(b, name, sql), limit)
    return "\n".join(lines)


def _immutable(db: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{quote(str(db.resolve()))}?immutable=1", uri=True)


def _schema(connection: sqlite3.Connection) -> list[tuple[str, str, str, str]]:
    rows = connection.execute("SELECT type, name, tbl_name, ifnull(sql, '') FROM sqlite_schema")
    return [(kind, name, table, sql) for kind, name, table, sql in rows]


def _rows(connection: sqlite3.Connection, table: str, sql: str) -> dict[object, tuple[Any, ...]]:
    """The table's rows keyed by rowid, or by the whole row for a WITHOUT ROWID table."""
    quoted = '"' + table.replace('"', '""') + '"'
    if WITHOUT_ROWID.search(sql):
        width = len(connection.execute(f"SELECT * FROM {quoted} LIMIT 0").description)
        order = ", ".join(str(n) for n in range(1, width + 1))
        return {row: row for row in connection.execute(f"SELECT * FROM {quoted} ORDER BY {order}")}
    return {row[0]: row[1:] for row in connection.execute(
        f"SELECT rowid, * FROM {quoted} ORDER BY rowid")}


def _table_diff(table: str, a: dict[object, tuple[Any, ...]], b: dict[object, tuple[Any, ...]],
                limit: int) -> list[str]:
    lines = [f"{table}: row {key!r} missing: {_short(a[key])}" for key in a if key not in b]
    lines += [f"{table}: row {key!r} unexpected: {_short(b[key])}" for key in b if key not in a]
    lines += [f"{table}: row {key!r} is {_short(b[key])}, expected {_short(a[key])}"
              for key in a if key in b and a[key] != b[key]]
    if len(lines) > limit:
        lines = [*lines[:limit], f"{table}: ... and {len(lines) - limit} more differences"]
    return lines


def _short(row: tuple[Any, ...]) -> str:
    text = repr(row)
    return text if len(text) <= 160 else text[:157] + "..."


# The oracle


@dataclass
class Reference:
    """A copy of the live database at a known state, and what a restore to that state must be."""

    name: str
    path: Path
    txn: int | None = None
    _dump: str | None = field(default=None, repr=False)

    def dump(self) -> str:
        if self._dump is None:
            self._dump = dump(self.path)
        return self._dump


@dataclass
class Oracle:
    """Recovery points of one live database, each with a reference copy of the same state, and
    the checks that restores give exactly those states."""

    db: Path
    repo: Location
    folder: Path
    references: list[Reference] = field(default_factory=list)
    restores: int = 0

    def point(self, name: str) -> Reference:
        """A recovery point now, and a copy of the database in the same state: no write may
        happen between the two (the caller makes sure no writer runs)."""
        txn = create_point(self.db, self.repo, name)
        reference = Reference(name, reference_copy(self.db, self.folder / f"{name}.reference.db"), txn)
        self.references.append(reference)
        return reference

    def copy(self, name: str) -> Reference:
        """A copy of the live database as it is now, with no recovery point."""
        return Reference(name, reference_copy(self.db, self.folder / f"{name}.reference.db"))

    def restore(self, *target: str) -> tuple[Path, dict[str, Any]]:
        self.restores += 1
        output = self.folder / f"restore-{self.restores}.db"
        return output, restore(self.repo, output, *target)

    def check(self, reference: Reference, *target: str) -> dict[str, Any]:
        """Restore `target` and require exactly the reference's content."""
        output, result = self.restore(*target)
        assert_same(reference, output, f"restore {' '.join(target)}")
        return result

    def check_points(self, *, by_txn: bool = False) -> None:
        """Every recovery point, by name (and by its transaction) restores to its reference (one
        point per transaction: two with no write between them are the same restore)."""
        distinct: dict[int | None, Reference] = {}
        for reference in self.references:
            distinct.setdefault(reference.txn, reference)
        for reference in distinct.values():
            by_name = self.check(reference, "--recovery-point", reference.name)
            assert by_name["txn"] == reference.txn
            if by_txn:
                assert self.check(reference, "--txn", str(reference.txn))["txn"] == reference.txn

    def check_latest(self, name: str = "final") -> Path:
        """--latest restores the live database as it is now (nothing may write to it any more);
        the restored file."""
        live = self.copy(name)
        output, _result = self.restore("--latest")
        assert_same(live, output, "restore --latest")
        return output


def points_across_fulls(oracle: Oracle, *, steps: int, seed: int, second_full_after: int
                        ) -> Oracle:
    """`oracle`'s database protected through two full backups (one a second), a workload run and
    a recovery point `p<step>` made with its reference copy at each step; the points after step
    `second_full_after` restore from the later full backup. The protector is stopped."""
    rng = random.Random(seed)
    with protecting(oracle.db, oracle.repo, *QUICK, "--full-every", "1s") as protector:
        for step in range(steps):
            workload(oracle.db, ops=rng.randint(20, 50), seed=step)
            oracle.point(f"p{step}")
            if step == second_full_after:
                protector.wait_for("full-backup", count=2)
        protector.stop()
    return oracle


def protected_history(tmp_path: Path) -> Oracle:
    """A mail database protected into `tmp_path`/repo through two full backups, with three
    recovery points, each with its reference copy; the protector stopped."""
    db, repo = tmp_path / "mail.db", tmp_path / "repo"
    new_store(db, repo)
    return points_across_fulls(Oracle(db, repo, tmp_path), steps=3, seed=20261207,
                               second_full_after=0)


def protected_encrypted(folder: Path, passphrase: str, point: str) -> int:
    """`folder`/mail.db, with one mailbox, protected into `folder`/repo, encrypted with
    `passphrase`, through a workload and the recovery point `point`; the point's transaction.
    The protector is stopped."""
    db, repo = folder / "mail.db", folder / "repo"
    with MailDatabase.create(db) as database:
        database.create_mailbox("alice@example.com", "Alice")
    Repository.init(repo, passphrase=passphrase)
    with pytest.MonkeyPatch.context() as patch:  # the passphrase for every process it starts
        patch.setenv("CPS_PASSPHRASE", passphrase)
        with protecting(db, repo, *QUICK) as protector:
            workload(db, ops=20, seed=3)
            txn = create_point(db, repo, point)
            protector.stop()
    return txn


def stop_in_a_new_chain(protector: ProtectorProcess, app: Application, oracle: Oracle
                        ) -> Reference:
    """Once the outage that let the WAL go is over: the new chain the protector starts, saying
    so, a point `after` in it, and the protector and the application stopped. The point."""
    started = protector.wait_for("new-chain", count=2)
    assert "let it go" in str(started["reason"])
    app.run(ops=10)
    after = oracle.point("after")
    protector.stop()
    app.close()
    return after


def check_released_then_new_chain(repo: Location, before: Reference, after: Reference) -> None:
    """The timeline after an outage past the WAL limit: the first chain whole through `before`,
    then a gap and a second chain saying the WAL was let go, which `after` is in."""
    first, second = timeline(repo)["chains"]
    assert second["gap_before"] is not None and "let it go" in second["reason"]
    assert first["last_txn"] >= before.txn and not first["holes"]
    assert after.txn is not None and before.txn is not None and after.txn > before.txn
    assert second["last_txn"] >= after.txn


def assert_same(reference: Reference, restored: Path, what: str) -> None:
    assert integrity(restored) == ["ok"], f"{what}: {restored} fails integrity_check"
    diff = database_diff(reference.path, restored)
    assert diff == "", f"{what} differs from reference {reference.name!r}:\n{diff}"
    assert dump(restored) == reference.dump(), f"{what}: the dump differs from {reference.name!r}'s"
