"""Physical checks of a mail database: the SQLite file under the mail.

The file's first 100 bytes are SQLite's header (https://sqlite.org/fileformat.html, 1.3); the
fields read here, all big-endian:

    offset  size  field
       0     16   "SQLite format 3\\0"
      16      2   page size in bytes (1 means 65536)
      24      4   file change counter
      28      4   size of the database in pages, valid when offset 92 equals offset 24
      60      4   user version (the mail store's schema version)
      68      4   application id (0x4350536D, "CPSm", for a mail database)
      92      4   the change counter the size at offset 28 is valid for

Then SQLite's own check of every page: `PRAGMA integrity_check` (b-tree structure, free pages,
every index against its table, UNIQUE and NOT NULL), or with `quick` `PRAGMA quick_check`, which
skips the comparison of indexes with their tables and so runs in linear time.
"""

from __future__ import annotations

import re
import sqlite3
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ..errors import NotAStore
from ..store.schema import APPLICATION_ID, SCHEMA_VERSION
from .findings import Finding, Place

MAGIC = b"SQLite format 3\x00"
HEADER_SIZE = 100
# The integrity check's lines about an index out of step with its table (SQLite 3.40 wording).
INDEX_LINE = re.compile(r"^(?:row \d+ missing from|wrong # of entries in|non-unique entry in) "
                        r"index (\S+)$")


@dataclass(frozen=True, slots=True)
class FileHeader:
    page_size: int
    pages: int | None  # None when the header's size is not valid (an old writer left it)
    user_version: int


def read_header(path: Path) -> FileHeader:
    """The header of a mail database, or NotAStore when the file is not one at all."""
    with path.open("rb") as handle:
        head = handle.read(HEADER_SIZE)
    if len(head) < HEADER_SIZE or not head.startswith(MAGIC):
        raise NotAStore(
            f"{path} is not a SQLite database: its first bytes are not SQLite's header",
            hint="Check the path. If it was a mail database, its first page is lost: restore it "
                 "from backup with cps restore.")
    (raw_page_size,) = struct.unpack_from(">H", head, 16)
    changes, pages = struct.unpack_from(">II", head, 24)
    (user_version,) = struct.unpack_from(">I", head, 60)
    (application_id,) = struct.unpack_from(">I", head, 68)
    (valid_for,) = struct.unpack_from(">I", head, 92)
    if application_id != APPLICATION_ID:
        raise NotAStore(f"{path} is not a CPS mail database (application id {application_id:#x})",
                        hint="Check the path; CPS mail databases are made with cps store create.")
    if user_version > SCHEMA_VERSION:
        raise NotAStore(f"{path} has schema version {user_version}, newer than this CPS "
                        f"understands ({SCHEMA_VERSION})", hint="Upgrade CPS to check it.")
    page_size = 65536 if raw_page_size == 1 else raw_page_size
    return FileHeader(page_size, pages if pages and valid_for == changes else None, user_version)


def check_length(path: Path, header: FileHeader) -> Iterator[Finding]:
    """A file shorter than the pages its header counts, or ending inside a page. While the WAL
    holds transactions the file may lag its header, and SQLite's own check judges it instead."""
    wal = Path(f"{path}-wal")
    if wal.exists() and wal.stat().st_size > 0:
        return
    size = path.stat().st_size
    expected = (header.pages or 0) * header.page_size
    if size < expected or size % header.page_size:
        yield Finding("truncated-file",
                      f"the file has {size} bytes; its header says {header.pages} pages of "
                      f"{header.page_size} bytes ({expected} bytes)")


def check_journal_mode(connection: sqlite3.Connection) -> Iterator[Finding]:
    mode = connection.execute("PRAGMA journal_mode").fetchone()[0]
    if mode != "wal":
        yield Finding("not-wal", f"the journal mode is {mode}, not wal: writes are not captured "
                                 "the way CPS protects them")


def check_pages(connection: sqlite3.Connection, *, quick: bool) -> Iterator[Finding]:
    """SQLite's check of the whole file. Lines about an index name the index; any other damage
    is looked for again table by table, so that each finding names the table hit."""
    pragma = "quick_check" if quick else "integrity_check"
    lines = _check(connection, pragma)
    damaged_indexes: dict[str, list[str]] = {}
    for line in lines:
        if match := INDEX_LINE.match(line):
            damaged_indexes.setdefault(match.group(1), []).append(line)
    for index, found in damaged_indexes.items():
        more = f" (and {len(found) - 1} more lines)" if len(found) > 1 else ""
        yield Finding("index-damaged", found[0] + more, Place(index=index))
    other = [line for line in lines if not INDEX_LINE.match(line)]
    if not other:
        return
    by_table = list(_damaged_tables(connection, pragma))
    yield from by_table or [Finding("page-damaged", "; ".join(other[:3]))]


def _damaged_tables(connection: sqlite3.Connection, pragma: str) -> Iterator[Finding]:
    tables = [name for (name,) in connection.execute(
        "SELECT name FROM sqlite_schema WHERE type = 'table' AND sql NOT LIKE 'CREATE VIRTUAL%' "
        "ORDER BY name")]
    for table in tables:
        other = [line for line in _check(connection, f'{pragma}("{table}")')
                 if not INDEX_LINE.match(line)]
        if other:
            yield Finding("page-damaged", "; ".join(other[:3]), Place(table=table))


def _check(connection: sqlite3.Connection, pragma: str) -> list[str]:
    """The problems a check pragma reports. SQLite stops the check with an error at some damage
    (a page that is not a b-tree page at all): that error is one problem."""
    try:
        lines = [line for row in connection.execute(f"PRAGMA {pragma}")
                 for line in str(row[0]).splitlines()]
    except sqlite3.DatabaseError as exc:
        return [f"SQLite's check stopped: {exc}"]
    return [line for line in lines if line != "ok" and not line.startswith("*** in database")]
