"""A database file as it was at one transaction, read page by page from the repository.

`PointImage.build` turns a restore plan into the bytes `restore` would write, without writing
them: page N at the point is the last image of page N the log wrote after the full backup, up to
and including the plan's last transaction; else page N of the full backup; else zeros (a page the
file grew by and nobody wrote, as in a restored file); the file is as long as the last applied
transaction says (`db_pages`), or the full backup when the log adds nothing.

- **The log** (what the plan's segments wrote after the full) is applied once, when the image is
  built, into an anonymous temporary file holding each page at its own offset, with a bitmap of
  the pages present: however many pages the log wrote, memory holds one bit per page.
- **The full backup** stays in the packs: its pages within the point's size are located by content
  address in one search of the packs' index records, read once (`PageIndex`: arrays, not an object
  per page), and a page is read alone, checked against that address, when SQLite first asks for
  it; a small LRU keeps the last pages read, decompressed and decrypted.

A segment or pack that cannot be read is a CPSError saying which and what to do: when the image is
built (a damaged segment, a page of the full in no readable pack), or when a read needs a damaged
page.
"""

from __future__ import annotations

import os
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Iterable
from contextlib import closing

import numpy as np
import numpy.typing as npt

from ..errors import CorruptFile, MissingFile
from ..repository import FullBackup, PageIndex, Repository, Transaction
from ..restore import Base, RestorePlan, from_nearest_readable, read_log

CACHED_PAGES = 512  # pages of the full backup kept decoded (2 MiB at 4 KiB a page)


class PointImage:
    """The database `plan` restores, readable by offset (see the module docstring). Close it to
    remove its temporary file."""

    def __init__(self, repo: Repository, full: FullBackup, index: PageIndex,
                 rows: npt.NDArray[np.intp], log: LogPages) -> None:
        self.repo = repo
        self.full = full
        self.index = index
        self.rows = rows  # the index entry of each page of the full within the point's size
        self.log = log
        self.page_size = full.page_size
        self.pages = log.db_pages
        self.txn = log.txn
        self.txn_time = log.txn_time
        self._decoded: OrderedDict[int, bytes] = OrderedDict()
        self._lock = threading.Lock()

    @classmethod
    def build(cls, repo: Repository, plan: RestorePlan) -> PointImage:
        """Apply the plan's log and locate the full backup's pages it still needs, from the
        nearest full backup that can be read (restore.from_nearest_readable)."""
        image, _passed = from_nearest_readable(plan, lambda base: cls._build(repo, plan, base))
        return image

    @classmethod
    def _build(cls, repo: Repository, plan: RestorePlan, base: Base) -> PointImage:
        full = repo.read_full(plan.db_id, base.full)
        log = LogPages(full.page_size, full.txn, full.pages)
        try:
            with closing(read_log(repo, plan, base)) as transactions:
                log.apply(transactions)
            index = repo.page_index()
            rows = _locate(repo, base, full, index, log)
        except BaseException:
            log.close()
            raise
        return cls(repo, full, index, rows, log)

    @property
    def size(self) -> int:
        return self.pages * self.page_size

    def read(self, offset: int, amount: int) -> bytes:
        """The bytes SQLite asks for: any span, usually one page; short at the end of the file."""
        first = offset // self.page_size
        last = min((offset + amount - 1) // self.page_size, self.pages - 1)
        data = b"".join(self.page(n) for n in range(first + 1, last + 2))
        start = offset - first * self.page_size
        return data[start : start + amount]

    def page(self, number: int) -> bytes:
        """Page `number` (from 1) at the point."""
        if self.log.has(number):
            return self.log.page(number)
        if number > self.full.pages:
            return bytes(self.page_size)
        with self._lock:
            cached = self._decoded.get(number)
            if cached is not None:
                self._decoded.move_to_end(number)
                return cached
        page = self.repo.read_page(self.full.page_id(number),
                                   self.index.location(int(self.rows[number - 1])))
        with self._lock:
            self._decoded[number] = page
            if len(self._decoded) > CACHED_PAGES:
                self._decoded.popitem(last=False)
        return page

    def close(self) -> None:
        self.log.close()


class LogPages:
    """The pages a run of transactions wrote after a full backup, each at its offset of an
    anonymous temporary file (removed by the system when closed, even after a crash), which of
    them are present, and where the run ended: its last transaction and the file's size then."""

    def __init__(self, page_size: int, full_txn: int, full_pages: int) -> None:
        self.page_size = page_size
        self.present = bytearray()
        self.txn = full_txn
        self.txn_time: int | None = None  # as a restore reports it: None when no log is applied
        self.db_pages = full_pages
        # Lives as long as the image, which closes it.
        self._file = tempfile.TemporaryFile(prefix="cps-point-")  # noqa: SIM115

    def apply(self, transactions: Iterable[Transaction]) -> None:
        fd = self._file.fileno()
        for transaction in transactions:
            for number, image in transaction.pages:
                os.pwrite(fd, image, (number - 1) * self.page_size)
                self._mark(number)
            self.txn, self.txn_time = transaction.txn, transaction.time
            self.db_pages = transaction.db_pages

    def has(self, number: int) -> bool:
        byte = (number - 1) >> 3
        return byte < len(self.present) and bool(self.present[byte] >> ((number - 1) & 7) & 1)

    def written(self, pages: int) -> npt.NDArray[np.bool_]:
        """Whether the run wrote each of pages 1 to `pages`."""
        # Padded here: unpackbits' own padding (`count`) returns uninitialised memory for an empty
        # input, which is what a point with no log has.
        bits = np.zeros(-(-pages // 8), np.uint8)
        held = min(len(bits), len(self.present))
        bits[:held] = np.frombuffer(bytes(self.present[:held]), np.uint8)
        return np.unpackbits(bits, bitorder="little")[:pages].astype(bool)

    def page(self, number: int) -> bytes:
        return os.pread(self._file.fileno(), self.page_size, (number - 1) * self.page_size)

    def close(self) -> None:
        self._file.close()

    def _mark(self, number: int) -> None:
        byte = (number - 1) >> 3
        if byte >= len(self.present):
            self.present.extend(bytes(byte + 1 - len(self.present)))
        self.present[byte] |= 1 << ((number - 1) & 7)


def _locate(repo: Repository, base: Base, full: FullBackup, index: PageIndex,
            log: LogPages) -> npt.NDArray[np.intp]:
    """The index entry of each page of the full within the point's size, -1 for one in no readable
    pack: a few more pages than the log leaves to read, located at no extra cost in one search.
    Fails now, not in the middle of a query, when a page the point reads is in no readable pack,
    naming the damaged packs if there are any."""
    within = min(log.db_pages, full.pages)
    rows = index.locate(np.frombuffer(full.page_ids, "S32", within))
    missing = np.count_nonzero((rows < 0) & ~log.written(within))
    if not missing:
        return rows
    text = (f"{missing} pages of the full backup {repo.full_name(base.full)} "
            f"(transaction {base.full.txn}) are in no readable pack")
    hint = ("Look at a point of a later full backup ('cps timeline'), and run 'cps verify repo' "
            "on the repository.")
    index.find_damage()
    if index.damaged:
        raise CorruptFile(text + "; damaged packs: " + "; ".join(index.damaged.values()),
                          hint=hint, path=str(next(iter(index.damaged))))
    raise MissingFile(text + ": a pack is missing from the repository", hint=hint)
