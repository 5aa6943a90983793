"""Full backups: the database's pages as of one captured transaction, taken while writers go on.

The image at captured frame e of the current WAL generation is, page by page, the page's last frame
at or before e, or else the page in the database file. That holds while a pinned reader keeps every
checkpoint at or before e: a checkpoint only writes pages that have frames, and those are read from
the WAL here, never from the file being written. Earlier generations were wholly backfilled before
their reset, so the file holds them. No lock on writers is taken, for any length of time.

Pages are content-addressed. A page whose id is the same as the previous full backup's page at the
same number is not stored again, so a new full backup costs only the pages that changed.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from ..errors import CaptureError
from ..repository import FullBackup, Repository, WalPosition
from .sqlite_db import DatabaseFile
from .sqlite_wal import FRAME_HEADER_SIZE, frame_offset

READ_CHUNK_PAGES = 256


@dataclass(frozen=True, slots=True)
class FullSource:
    """What to copy: the database file, its WAL, and which pages to take from which frame."""

    db: DatabaseFile
    wal_path: Path
    page_size: int
    db_pages: int
    page_frames: dict[int, int]
    position: WalPosition


@dataclass(frozen=True, slots=True)
class FullResult:
    full: FullBackup
    pages_stored: int
    bytes_written: int


def take_full(
    repo: Repository,
    db_id: str,
    chain: int,
    txn: int,
    source: FullSource,
    previous: FullBackup | None,
    progress: Callable[[int, int], None] | None = None,
) -> FullResult:
    """Copy the image described by `source` into the repository as a full backup at `txn`."""
    writer = repo.page_writer()
    same_size = previous is not None and previous.page_size == source.page_size
    before = previous.page_ids if previous is not None and same_size else b""
    ids = bytearray()
    stored = 0
    for number, page in _pages(source):
        page_id = repo.page_id(page)
        ids += page_id
        start = (number - 1) * len(page_id)
        if before[start : start + len(page_id)] != page_id:
            stored += page_id not in writer.pending
            writer.add(page_id, page)
        if progress and number % 4096 == 0:
            progress(number, source.db_pages)
    writer.flush()
    full = FullBackup(chain, txn, int(time.time() * 1000), source.page_size, source.position,
                      bytes(ids))
    repo.write_full(db_id, full)
    if progress:
        progress(source.db_pages, source.db_pages)
    return FullResult(full, stored, writer.written_bytes)


def _pages(source: FullSource) -> Iterator[tuple[int, bytes]]:
    size = source.page_size
    with ExitStack() as files:
        wal = files.enter_context(source.wal_path.open("rb")) if source.page_frames else None
        for first in range(1, source.db_pages + 1, READ_CHUNK_PAGES):
            last = min(first + READ_CHUNK_PAGES - 1, source.db_pages)
            chunk = source.db.read((first - 1) * size, (last - first + 1) * size)
            for number in range(first, last + 1):
                frame = source.page_frames.get(number)
                if frame is not None and wal is not None:
                    wal.seek(frame_offset(frame, size) + FRAME_HEADER_SIZE)
                    page = wal.read(size)
                else:
                    start = (number - first) * size
                    page = chunk[start : start + size]
                if len(page) != size:
                    raise CaptureError(
                        f"page {number} is neither in the WAL nor in the database file",
                        hint="The database file was changed outside SQLite; check it with "
                             "PRAGMA integrity_check.")
                yield number, page
