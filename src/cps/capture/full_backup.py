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

import os
import struct
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import BinaryIO
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
    # Pages written since the previous full backup, one bit each (page n is bit n-1), when capture
    # saw every transaction since it; None when it did not, and every page must be read.
    changed: bytearray | None = None


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
    usable = previous if previous is not None and previous.page_size == source.page_size else None
    reuse = _reusable(source, usable)
    ids = bytearray()
    stored = 0
    for number, page in _pages(source, reuse):
        if page is None:
            assert usable is not None
            ids += usable.page_id(number)
            continue
        page_id = repo.page_id(page)
        ids += page_id
        if usable is None or number > usable.pages or usable.page_id(number) != page_id:
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


def mark_changed(bitmap: bytearray, page_number: int) -> None:
    index = page_number - 1
    if index // 8 >= len(bitmap):
        bitmap.extend(bytes(index // 8 + 1 - len(bitmap)))
    bitmap[index // 8] |= 1 << (index % 8)


def _reusable(source: FullSource, previous: FullBackup | None) -> Callable[[int], bool]:
    """Whether page `n` can be taken from the previous full backup without reading it."""
    changed = source.changed
    if previous is None or changed is None:
        return lambda _number: False
    limit = previous.pages

    def unchanged(number: int) -> bool:
        index = number - 1
        if number > limit:
            return False
        return index // 8 >= len(changed) or not changed[index // 8] & (1 << (index % 8))

    return unchanged


def _pages(source: FullSource, reuse: Callable[[int], bool]
           ) -> Iterator[tuple[int, bytes | None]]:
    """Each page of the image, or None for a page to take from the previous full backup."""
    size = source.page_size
    with ExitStack() as files:
        wal = _WalPages(files.enter_context(source.wal_path.open("rb")), source) \
            if source.page_frames else None
        for first in range(1, source.db_pages + 1, READ_CHUNK_PAGES):
            last = min(first + READ_CHUNK_PAGES - 1, source.db_pages)
            numbers = range(first, last + 1)
            wanted = [n for n in numbers if not reuse(n)]
            chunk = source.db.read((first - 1) * size, (last - first + 1) * size) if wanted else b""
            for number in numbers:
                if reuse(number):
                    yield number, None
                    continue
                page = wal.page(number) if wal is not None else None
                if page is None:
                    start = (number - first) * size
                    page = chunk[start : start + size]
                if len(page) != size:
                    raise CaptureError(
                        f"page {number} is neither in the WAL nor in the database file",
                        hint="The database file was changed outside SQLite; check it with "
                             "PRAGMA integrity_check.")
                yield number, page


class _WalPages:
    """Pages of the image that are in the WAL, read while the WAL still holds them.

    The WAL can be reset under a running full backup in one case only: its snapshot was taken when
    every frame had been copied back into the database file (SQLite then gives it no WAL snapshot to
    protect). The database file then holds the whole image, and that snapshot keeps any checkpoint
    from changing it. So a frame whose salts are no longer this generation's means: read the
    database file, for this page and every later one. The salts are read again after the page,
    because a writer writes a frame's header before its page.
    """

    def __init__(self, handle: BinaryIO, source: FullSource) -> None:
        self.handle = handle
        self.source = source
        self.salts = struct.pack(">II", source.position.salt1, source.position.salt2)
        self.intact = True

    def page(self, number: int) -> bytes | None:
        frame = self.source.page_frames.get(number)
        if frame is None or not self.intact:
            return None
        offset = frame_offset(frame, self.source.page_size)
        data = os.pread(self.handle.fileno(), FRAME_HEADER_SIZE + self.source.page_size, offset)
        if data[8:16] != self.salts or os.pread(self.handle.fileno(), 8, offset + 8) != self.salts:
            self.intact = False
            return None
        return data[FRAME_HEADER_SIZE:]
