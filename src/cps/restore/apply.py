"""Carrying out a restore plan: the log's newest pages and the full backup's others, into a new file.

The log is read first, in order, up to the target (`log.read_log`): what it leaves is the newest
image of each page it wrote and the database's size at the target, and each of those pages is
written once (a log of more than LOG_HELD_BYTES of pages is written out as it goes). Then come the
full backup's pages, only those the log did not write and that lie within that size, read pack by
pack (`Repository.read_pages`) and written in runs of consecutive pages. The file is the same as
writing the whole full backup and then every transaction in order.

Everything is written to `<output>.partial`, which is cut to the target's size, then fsynced while
`PRAGMA integrity_check` reads it. Only when both succeed is it renamed to `<output>` (and the
folder fsynced). On any failure the partial file is removed: the output is the exact database at
the target, or nothing.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import quote

import numpy as np
import numpy.typing as npt

from ..durable import fsync_folder
from ..errors import RestoreError
from ..repository import FullBackup, PageIndex, Repository, Transaction
from .bases import from_nearest_readable
from .log import LogUnreadable, read_log
from .plan import Base, RestorePlan
from .targets import format_ms

Progress = Callable[[str, int, int], None]
Numbers = npt.NDArray[np.int64]

LOG_HELD_BYTES = 128 << 20  # newest log pages kept in memory; past that they are written out early
RUN_BYTES = 256 << 10  # most bytes per write call: longer were no faster, and at 1 MiB at times slower
PROGRESS_STEPS = 100  # reports over the log: one per transaction would cost more than applying it


@dataclass(frozen=True, slots=True)
class RestoreResult:
    output: Path
    chain: int
    txn: int
    txn_time: int | None
    pages: int
    page_size: int
    damaged: str | None  # with best effort: why the result stops before the target
    passed_over: tuple[str, ...] = ()  # full backups that could not be read, and were not used


def restore(repo: Repository, plan: RestorePlan, output: Path, *, force: bool = False,
            best_effort: bool = False, progress: Progress | None = None) -> RestoreResult:
    """Write the database `plan` names to `output`. With `best_effort`, a log that cannot be
    read through gives the latest state before the damage; the result says so in `damaged`, as
    it does when the plan itself stops short of its target (`RestorePlan.shortfall`)."""
    refuse_existing(output, force=force)
    partial = output.with_name(output.name + ".partial")
    remove_database(partial)
    try:
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            def build(base: Base) -> RestoreResult:
                os.ftruncate(fd, 0)  # a base tried before may have written some pages
                return _build(repo, plan, base, fd, output, best_effort, progress or _quiet)

            result, passed = from_nearest_readable(plan, build)
            _sync_and_check(fd, partial)
        finally:
            os.close(fd)
        install_database(partial, output)
        return replace(result, passed_over=passed,
                       damaged=_joined(plan.shortfall, result.damaged))
    except BaseException:
        remove_database(partial)
        raise


def refuse_existing(output: Path, *, force: bool) -> None:
    """A restore replaces a file only when told to (`--force`)."""
    if output.exists() and not force:
        raise RestoreError(f"{output} already exists",
                           hint="Choose another output, or pass --force to replace it.")


def install_database(complete: Path, output: Path) -> None:
    """Move the complete, synced database file `complete` to `output`, durably."""
    remove_database(output)  # an old -wal beside the output would be replayed onto it
    os.replace(complete, output)
    fsync_folder(output.parent)


def _build(repo: Repository, plan: RestorePlan, base: Base, fd: int, output: Path,
           best_effort: bool, progress: Progress) -> RestoreResult:
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="cps-index") as pool:
        index = pool.submit(repo.page_index)  # the packs' indexes are read while the log is
        full = repo.read_full(plan.db_id, base.full)
        log = LogPages(fd, full.page_size, full.txn, full.pages)
        _apply_log(repo, plan, base, log, best_effort, progress)
        log.finish()
        _write_full_pages(repo, full, base, index.result(), log, progress)
    os.ftruncate(fd, log.db_pages * full.page_size)
    return RestoreResult(output, plan.chain, log.txn, log.txn_time, log.db_pages, full.page_size,
                         log.damaged)


def _joined(*notes: str | None) -> str | None:
    present = [n for n in notes if n]
    return "; ".join(present) if present else None


class LogPages:
    """The log applied to a database file from a state (`txn`, `db_pages`) on: the newest image
    of each page it wrote, held until written out (early, when they would take more than
    LOG_HELD_BYTES), every page number it wrote, and where it ended. `before_write(txn)` is
    called before pages of transactions up to `txn` are written into the file."""

    def __init__(self, fd: int, page_size: int, txn: int, db_pages: int,
                 before_write: Callable[[int], None] | None = None) -> None:
        self.fd = fd
        self.page_size = page_size
        self.newest: dict[int, bytes] = {}
        self.written: set[int] = set()
        self.txn, self.db_pages = txn, db_pages
        self.txn_time: int | None = None
        self.damaged: str | None = None
        self.before_write = before_write

    def apply(self, transaction: Transaction) -> None:
        """Apply the transaction that follows the last one applied."""
        self.newest.update(transaction.pages)
        self.txn, self.txn_time = transaction.txn, transaction.time
        self.db_pages = transaction.db_pages
        if len(self.newest) * self.page_size > LOG_HELD_BYTES:
            # All of them: the database may grow back over a page past its size now.
            self.write_out(list(self.newest))

    def finish(self) -> None:
        """Write the held pages within the database's size (the file is cut to it at the end)."""
        self.write_out([n for n in self.newest if n <= self.db_pages])

    def write_out(self, numbers: list[int]) -> None:
        """Write the held pages `numbers`, and hold none any more."""
        if self.before_write is not None and self.newest:
            self.before_write(self.txn)
        numbers.sort()
        _write_pages(self.fd, self.page_size, np.array(numbers, np.int64),
                     [self.newest[n] for n in numbers])
        self.written.update(self.newest)
        self.newest.clear()


def _apply_log(repo: Repository, plan: RestorePlan, base: Base, log: LogPages,
               best_effort: bool, progress: Progress) -> None:
    first = reported = log.txn
    total = max(1, plan.last_txn - first)
    try:
        with contextlib.closing(read_log(repo, plan, base)) as transactions:
            for transaction in transactions:
                log.apply(transaction)
                if (log.txn - reported) * PROGRESS_STEPS >= total:
                    progress("transactions", log.txn - first, total)
                    reported = log.txn
    except LogUnreadable as damage:
        if not best_effort:
            raise
        log.damaged = f"{damage.message}; restored transaction {log.txn}, the last before it"
    progress("transactions", log.txn - first, total)


def _write_full_pages(repo: Repository, full: FullBackup, base: Base,
                      index: PageIndex, log: LogPages, progress: Progress) -> None:
    """The full backup's pages within the target's size that the log did not write."""
    needed_by = (f"the full backup {repo.full_name(base.full)} "
                 f"(transaction {full.txn}, {format_ms(full.taken_at)})")
    # Every page of the full, even one the log wrote over: a page in no readable pack is damage to
    # report, whichever pages this target happens to need.
    rows = index.require(full.page_ids, needed_by)
    within = min(full.pages, log.db_pages)
    wanted = np.ones(within, bool)
    logged = np.fromiter(log.written, np.int64, len(log.written))
    wanted[logged[logged <= within] - 1] = False
    numbers: Numbers = np.flatnonzero(wanted) + 1
    done = 0
    with contextlib.closing(repo.read_pages(rows[numbers - 1], index, needed_by,
                                            full.page_size)) as packs:
        for places, pages in packs:
            _write_pages(log.fd, full.page_size, numbers[places], pages)
            done += len(places)
            progress("full backup", done, len(numbers))


def _write_pages(fd: int, page_size: int, numbers: Numbers, pages: Sequence[bytes | memoryview]
                 ) -> None:
    """Write pages (numbers ascending) in runs of consecutive page numbers, one call per run:
    page by page, a large database costs more in system calls than in bytes."""
    longest = max(1, RUN_BYTES // page_size)
    breaks = np.flatnonzero(np.diff(numbers) != 1) + 1
    for start, end in zip([0, *breaks.tolist()], [*breaks.tolist(), len(numbers)], strict=True):
        for first in range(start, end, longest):
            last = min(first + longest, end)
            _write_all(fd, pages[first:last], (int(numbers[first]) - 1) * page_size)


def _write_all(fd: int, pages: Sequence[bytes | memoryview], offset: int) -> None:
    written = os.pwritev(fd, pages, offset)
    data = b"".join(pages) if written < sum(map(len, pages)) else b""
    while written < len(data):  # a short write: rare on a file, but the rest still has to go
        written += os.pwrite(fd, data[written:], offset + written)


def _sync_and_check(fd: int, path: Path) -> None:
    """fsync the file while PRAGMA integrity_check reads it from the page cache: both take long on
    a large database, neither needs the other, and the file counts only when both succeed."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="cps-fsync") as pool:
        synced = pool.submit(os.fsync, fd)
        check_database(path)
        synced.result()


def check_database(path: Path) -> None:
    uri = f"file:{quote(str(path.resolve()))}?immutable=1"
    connection = sqlite3.connect(uri, uri=True)
    try:
        # Mapped, the pages are read in place instead of copied into SQLite's cache one by one
        # (they count in the process's resident size as file pages, not memory of its own).
        connection.execute(f"PRAGMA mmap_size = {path.stat().st_size}")
        result = [row[0] for row in connection.execute("PRAGMA integrity_check")]
    except sqlite3.DatabaseError as exc:
        raise RestoreError(f"the restored database does not open: {exc}") from exc
    finally:
        connection.close()
    if result != ["ok"]:
        raise RestoreError("the restored database fails PRAGMA integrity_check: "
                           + "; ".join(result[:5]),
                           hint="Run 'cps verify repo --read-all' on the repository and report this.")


def remove_database(path: Path) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        with contextlib.suppress(FileNotFoundError):
            Path(f"{path}{suffix}").unlink()


def _quiet(_stage: str, _done: int, _total: int) -> None:
    return None
