"""Full backups: the database's pages as of one captured transaction, taken while writers go on.

A chain starts with a *live* full backup, read from the database itself. The image at captured
frame e of the current WAL generation is, page by page, the page's last frame at or before e, or
else the page in the database file. That holds while a pinned reader keeps every checkpoint at or
before e: a checkpoint only writes pages that have frames, and those are read from the WAL here,
never from the file being written. Earlier generations were wholly backfilled before their reset,
so the file holds them. No lock on writers is taken, for any length of time.

Every later full backup of the chain is *synthesised* from the repository alone: the previous full
backup's page list, with each page written since replaced by its last version in the captured log.
It never touches the live database, so it costs the application nothing and cannot hold its WAL
back, however long it takes; and it is exactly the image a restore of the log would produce.

The protector has both kinds made by a child process (full_process.py).

Pages are content-addressed. A page whose id is the same as the previous full backup's page at the
same number is not stored again, so a new full backup costs only the pages that changed.
"""

from __future__ import annotations

import os
import struct
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from ..errors import CaptureError
from ..repository import (
    PAGE_ID_SIZE,
    FullBackup,
    FullRef,
    PackWriter,
    Repository,
    SegmentRef,
    Transaction,
    WalPosition,
)
from .sqlite_db import DatabaseFile, lock_page
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
    full: FullRef
    pages: int
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
    """Copy the live image described by `source` into the repository as a full backup at `txn`;
    pages equal to `previous` at the same number are not stored again. `progress` hears the
    pages copied so far and their total, a chunk at a time."""
    writer = repo.page_writer()
    usable = previous if previous is not None and previous.page_size == source.page_size else None
    ids = bytearray()
    for number, page in _pages(source):
        if progress is not None and (number % READ_CHUNK_PAGES == 0 or number == source.db_pages):
            progress(number, source.db_pages)
        page_id = repo.page_id(page)
        ids += page_id
        if usable is None or number > usable.pages or usable.page_id(number) != page_id:
            writer.add(page_id, page)
    return _finish(repo, db_id, FullBackup(chain, txn, _now_ms(), source.page_size,
                                           source.position, bytes(ids)), writer)


def synthesize_full(repo: Repository, db_id: str, previous: FullBackup, txn: int,
                    position: WalPosition) -> FullResult:
    """A full backup at `txn` made from `previous` and the segments after it, in the repository."""
    refs = [r for r in repo.segments(db_id, previous.chain)
            if r.last_txn > previous.txn and r.first_txn <= txn]
    writer = repo.page_writer()

    def store(number: int, page_id: bytes, image: bytes) -> None:
        if number > previous.pages or previous.page_id(number) != page_id:
            writer.add(page_id, image)

    state = state_after_log(repo, db_id, previous, refs, txn, store)
    return _finish(repo, db_id, FullBackup(previous.chain, txn, _now_ms(), previous.page_size,
                                           position, bytes(state.page_ids)), writer)


@dataclass(frozen=True, slots=True)
class LogState:
    page_ids: bytearray  # of pages 1, 2, ... of the database after the log
    db_pages: int


def state_after_log(repo: Repository, db_id: str, previous: FullBackup, refs: list[SegmentRef],
                    txn: int, store: Callable[[int, bytes, bytes], None] | None = None
                    ) -> LogState:
    """The page ids of the database after transaction `txn`: `previous`'s, each page the log
    wrote since replaced by the id of its last image (handed to `store` with the image). Two
    passes over the log, so that only last images are hashed and no image is held."""
    last_write: dict[int, int] = {}  # page number -> the transaction that wrote it last
    db_pages = previous.pages
    for transaction in _transactions(repo, db_id, refs, previous.txn, txn):
        for number, _image in transaction.pages:
            last_write[number] = transaction.txn
        db_pages = transaction.db_pages
    lock = lock_page(previous.page_size)
    missing = [n for n in range(previous.pages + 1, db_pages + 1)
               if n not in last_write and n != lock]
    if missing:
        raise CaptureError(f"the log does not hold page {missing[0]}, which the database grew to "
                           f"include after transaction {previous.txn}")
    ids = bytearray(previous.page_ids[: db_pages * PAGE_ID_SIZE])
    ids += bytes((db_pages * PAGE_ID_SIZE) - len(ids))
    for transaction in _transactions(repo, db_id, refs, previous.txn, txn):
        for number, image in transaction.pages:
            if number > db_pages or last_write[number] != transaction.txn:
                continue
            page_id = repo.page_id(image)
            if store is not None:
                store(number, page_id, image)
            ids[(number - 1) * PAGE_ID_SIZE : number * PAGE_ID_SIZE] = page_id
    if previous.pages < lock <= db_pages and lock not in last_write:
        _add_lock_page(repo, ids, lock, previous.page_size, store)
    return LogState(ids, db_pages)


def _add_lock_page(repo: Repository, ids: bytearray, lock: int, page_size: int,
                   store: Callable[[int, bytes, bytes], None] | None) -> None:
    """The lock page, which the database grew past: zeros, as the file's hole reads."""
    image = bytes(page_size)
    page_id = repo.page_id(image)
    if store is not None:
        store(lock, page_id, image)
    ids[(lock - 1) * PAGE_ID_SIZE : lock * PAGE_ID_SIZE] = page_id


def _transactions(repo: Repository, db_id: str, refs: list[SegmentRef], after: int, upto: int
                  ) -> Iterator[Transaction]:
    expected = after + 1
    for ref in refs:
        for transaction in repo.read_segment(db_id, ref).transactions:
            if after < transaction.txn <= upto:
                if transaction.txn != expected:
                    raise CaptureError(f"the log misses transaction {expected} of chain "
                                       f"{ref.chain}; no full backup can be made from it")
                expected += 1
                yield transaction
    if expected != upto + 1:
        raise CaptureError(f"the log ends at transaction {expected - 1}, before {upto}")


def _finish(repo: Repository, db_id: str, full: FullBackup, writer: PackWriter) -> FullResult:
    writer.flush()  # the packs first: a full backup file only ever lists pages already stored
    ref = repo.write_full(db_id, full)
    return FullResult(ref, full.pages, writer.pages_flushed, writer.written_bytes)


def _now_ms() -> int:
    return int(time.time() * 1000)


def _pages(source: FullSource) -> Iterator[tuple[int, bytes]]:
    """Each page of the live image, in order."""
    size = source.page_size
    lock = lock_page(size)
    with ExitStack() as files:
        wal = _WalPages(files.enter_context(source.wal_path.open("rb")), source) \
            if source.page_frames else None
        for first in range(1, source.db_pages + 1, READ_CHUNK_PAGES):
            last = min(first + READ_CHUNK_PAGES - 1, source.db_pages)
            chunk = source.db.read((first - 1) * size, (last - first + 1) * size)
            for number in range(first, last + 1):
                page = wal.page(number) if wal is not None else None
                if page is None:
                    start = (number - first) * size
                    page = chunk[start : start + size]
                if len(page) != size and number == lock:
                    page = bytes(size)  # past the file's end, before a checkpoint wrote beyond
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
