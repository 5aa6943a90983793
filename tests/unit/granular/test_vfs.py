"""The read-only VFS through which SQLite reads a point: real SQLite files served from memory, the
connections of Python's own sqlite3 module, and what it must refuse."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from cps.errors import CorruptFile
from cps.granular.vfs import VFS_NAME, serve

ROWS = 8000


class BytesImage:
    """A database file's bytes, counting the reads asked of it."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.reads: list[tuple[int, int]] = []

    @property
    def size(self) -> int:
        return len(self.data)

    def read(self, offset: int, amount: int) -> bytes:
        self.reads.append((offset, amount))
        return self.data[offset : offset + amount]


class FailingImage(BytesImage):
    """Fails every read after the first `good` ones, as a damaged pack would."""

    def __init__(self, data: bytes, good: int) -> None:
        super().__init__(data)
        self.good = good

    def read(self, offset: int, amount: int) -> bytes:
        if len(self.reads) >= self.good:
            raise CorruptFile("pack X fails its checksum", path="X")
        return super().read(offset, amount)


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A WAL-mode database (as mail databases are), checkpointed: its file holds every row."""
    path = tmp_path_factory.mktemp("vfs") / "rows.db"
    connection = sqlite3.connect(path)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, body BLOB)")
    connection.executemany("INSERT INTO t VALUES (?, ?)",
                           [(n, n.to_bytes(4, "big") * 60) for n in range(ROWS)])
    connection.commit()
    connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    connection.close()
    return path.read_bytes()


@pytest.fixture
def connection(database: bytes) -> Iterator[sqlite3.Connection]:
    served = serve(BytesImage(database))
    connection = served.connect()
    yield connection
    connection.close()
    served.close()


def test_sqlite_reads_the_served_bytes(connection: sqlite3.Connection) -> None:
    assert connection.execute("SELECT count(*), sum(id) FROM t").fetchone() == (
        ROWS, ROWS * (ROWS - 1) // 2)
    assert connection.execute("SELECT body FROM t WHERE id = 1234").fetchone() == (
        (1234).to_bytes(4, "big") * 60,)
    assert connection.execute("PRAGMA integrity_check").fetchall() == [("ok",)]


def test_writes_are_refused(connection: sqlite3.Connection, database: bytes) -> None:
    for statement in ("INSERT INTO t VALUES (-1, x'00')", "CREATE TABLE u(a)", "VACUUM"):
        with pytest.raises(sqlite3.OperationalError, match="readonly|read-only|read only"):
            connection.execute(statement)
    assert connection.execute("SELECT count(*) FROM t").fetchone() == (ROWS,)


def test_a_large_sort_spills_to_temporary_files(connection: sqlite3.Connection) -> None:
    # With a 64 KiB cache, sorting 1.9 MB of rows needs SQLite's own temporary files, which this
    # VFS leaves to the default one.
    connection.execute("PRAGMA cache_size=-64")
    rows = connection.execute("SELECT id FROM t ORDER BY body DESC").fetchall()
    assert [r[0] for r in rows] == list(range(ROWS - 1, -1, -1))


def test_reads_past_the_end_are_short(database: bytes) -> None:
    image = BytesImage(database[: len(database) // 2])  # a file cut in half
    served = serve(image)
    connection = served.connect()
    try:
        with pytest.raises(sqlite3.DatabaseError):
            connection.execute("SELECT count(*) FROM t WHERE body > x'00'").fetchone()
        assert served.failure is None  # short reads are SQLite's business, not a failure
    finally:
        connection.close()
        served.close()


def test_a_failed_read_is_kept_and_never_crosses_into_c(database: bytes,
                                                        capfd: pytest.CaptureFixture[str]) -> None:
    served = serve(FailingImage(database, good=3))
    connection = served.connect()
    try:
        with pytest.raises(sqlite3.OperationalError, match="disk I/O error"):
            connection.execute("SELECT count(*) FROM t WHERE body > x'00'").fetchone()
    finally:
        connection.close()
        served.close()
    assert isinstance(served.failure, CorruptFile) and "pack X" in served.failure.message
    assert capfd.readouterr().err == ""  # ctypes prints exceptions that escape a callback


def test_only_served_images_open(database: bytes, tmp_path: Path) -> None:
    served = serve(BytesImage(database))
    uri = served.uri
    served.close()
    real = tmp_path / "real.db"
    real.write_bytes(database)
    for name in (uri, f"file:{real}?vfs={VFS_NAME}&mode=ro", f"file:/cps-point/x?vfs={VFS_NAME}"):
        with pytest.raises(sqlite3.OperationalError):
            sqlite3.connect(name, uri=True).execute("SELECT 1 FROM t").fetchall()


def test_two_images_are_independent(database: bytes) -> None:
    empty = sqlite3.connect(":memory:")
    other = serve(BytesImage(_serialized(empty)))
    first = serve(BytesImage(database))
    try:
        one, two = first.connect(), other.connect()
        assert one.execute("SELECT count(*) FROM t").fetchone() == (ROWS,)
        assert two.execute("SELECT count(*) FROM sqlite_master").fetchone() == (0,)
        one.close()
        two.close()
    finally:
        first.close()
        other.close()


def test_a_connection_left_open_at_exit_does_not_crash(tmp_path: Path, database: bytes) -> None:
    path = tmp_path / "rows.db"
    path.write_bytes(database)
    program = (
        "import sys; from pathlib import Path; from cps.granular.vfs import serve\n"
        "data = Path(sys.argv[1]).read_bytes()\n"
        "class Image:\n"
        "    size = len(data)\n"
        "    def read(self, offset, amount): return data[offset:offset + amount]\n"
        "kept = serve(Image()).connect()\n"
        "kept.execute('PRAGMA cache_size=-64')\n"
        "print(len(kept.execute('SELECT id FROM t ORDER BY body').fetchall()))\n"
    )
    done = subprocess.run([sys.executable, "-c", program, str(path)], capture_output=True,
                          text=True, check=False)
    assert (done.returncode, done.stdout.strip(), done.stderr) == (0, str(ROWS), "")


def _serialized(connection: sqlite3.Connection) -> bytes:
    connection.execute("CREATE TABLE x(a)")
    connection.execute("DROP TABLE x")
    return connection.serialize()
