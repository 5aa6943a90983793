"""What CPS reads of a SQLite database file's 100-byte header, without opening a connection.

    offset size  field (big-endian)
    0      16    "SQLite format 3\\0"
    16     2     page size (1 means 65536)
    18     1     file format write version: 1 rollback journal, 2 WAL
    19     1     file format read version: 1 rollback journal, 2 WAL
    24     4     file change counter
    28     4     database size in pages, valid when offset 92 equals offset 24
    92     4     version-valid-for
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path

from ..errors import CaptureError, NotInWalMode

# SQLite's file locks use the bytes from 1 GiB on; the page holding them is never written, so a
# database past 1 GiB has a hole there (read as zeros) and no WAL frame of it.
PENDING_BYTE = 0x40000000
MAGIC = b"SQLite format 3\x00"


@dataclass(frozen=True, slots=True)
class DbHeader:
    page_size: int
    wal_mode: bool
    pages: int | None  # from the header, when the header says it is valid



def lock_page(page_size: int) -> int:
    """The number of the page SQLite never writes (PENDING_BYTE's)."""
    return PENDING_BYTE // page_size + 1

class DatabaseFile:
    """The database file, opened once and read with pread, closed only after every SQLite
    connection of this process to it is closed.

    POSIX record locks belong to a process, not to a file descriptor: closing *any* descriptor of
    a file drops every lock the process holds on it, SQLite's included. A protector that opened
    and closed the database file while its read-only connections were open would silently drop the
    shared lock that keeps another process from checkpointing and deleting the WAL on close.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self.fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            raise CaptureError(f"no database at {path}") from None

    def read(self, offset: int, size: int) -> bytes:
        return os.pread(self.fd, size, offset)

    def size(self) -> int:
        return os.fstat(self.fd).st_size

    def header(self) -> DbHeader:
        return parse_db_header(self.path, self.read(0, 100))

    def close(self) -> None:
        os.close(self.fd)


def parse_db_header(path: Path, data: bytes) -> DbHeader:
    if len(data) < 100 or not data.startswith(MAGIC):
        raise CaptureError(f"{path} is not a SQLite database",
                           hint="Check the path; CPS protects SQLite databases in WAL mode.")
    (raw_size,) = struct.unpack_from(">H", data, 16)
    change_counter, pages = struct.unpack_from(">II", data, 24)
    (valid_for,) = struct.unpack_from(">I", data, 92)
    return DbHeader(
        page_size=65536 if raw_size == 1 else raw_size,
        wal_mode=data[18] == 2 and data[19] == 2,
        pages=pages if valid_for == change_counter and pages else None,
    )


def require_wal_mode(db: DatabaseFile) -> DbHeader:
    header = db.header()
    path = db.path
    if not header.wal_mode:
        raise NotInWalMode(
            f"{path} is not in WAL mode: SQLite discards its log at every commit, so its "
            "transactions cannot be captured continuously",
            hint=f"Switch it to WAL mode once, while nothing else uses it: sqlite3 {path} "
                 "'PRAGMA journal_mode=WAL'. CPS never changes a database's journal mode itself.")
    return header


def file_pages(db: DatabaseFile, page_size: int) -> int:
    """The database's size in pages when its WAL holds no frames: every page is in the file."""
    header = db.header()
    if header.pages is not None:
        return header.pages
    return db.size() // page_size
