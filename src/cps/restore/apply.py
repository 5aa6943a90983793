"""Carrying out a restore plan: full backup pages, then transactions, into a new database file.

Everything is written to `<output>.partial`: the full backup's pages, then each transaction's pages
in order up to the target, then the file is cut to the target's size, fsynced and checked with
`PRAGMA integrity_check`. Only then is it renamed to `<output>` (and the folder fsynced). On any
failure the partial file is removed: the output is the exact database at the target, or nothing.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from ..durable import fsync_folder
from ..errors import RepositoryError, RestoreError
from ..repository import Repository, SegmentRef
from .plan import RestorePlan
from .targets import format_ms

Progress = Callable[[str, int, int], None]


@dataclass(frozen=True, slots=True)
class RestoreResult:
    output: Path
    chain: int
    txn: int
    txn_time: int | None
    pages: int
    damaged: str | None  # with best effort: what could not be read, and what was left out


def restore(repo: Repository, plan: RestorePlan, output: Path, *, force: bool = False,
            best_effort: bool = False, progress: Progress | None = None) -> RestoreResult:
    if output.exists() and not force:
        raise RestoreError(f"{output} already exists",
                           hint="Choose another output, or pass --force to replace it.")
    partial = output.with_name(output.name + ".partial")
    _remove_database(partial)
    try:
        result = _build(repo, plan, partial, output, best_effort, progress or _quiet)
        _check(partial)
        _remove_database(output)  # an old -wal beside the output would be replayed onto it
        os.replace(partial, output)
        fsync_folder(output.parent)
        return result
    except BaseException:
        _remove_database(partial)
        raise


def _build(repo: Repository, plan: RestorePlan, partial: Path, output: Path, best_effort: bool,
           progress: Progress) -> RestoreResult:
    full = repo.read_full(plan.db_id, plan.full)
    size = full.page_size
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        locations = repo.page_locations(full.ids())
        positions: dict[bytes, list[int]] = {}
        for number, page_id in enumerate(full.ids(), start=1):
            positions.setdefault(page_id, []).append(number)
        needed_by = (f"the full backup {repo.full_path(plan.db_id, plan.full).name} "
                     f"(transaction {full.txn}, {format_ms(full.taken_at)})")
        writes = _PageWrites(fd, size)
        for page_id, page in repo.read_pages(list(positions), locations, needed_by):
            for number in positions[page_id]:
                writes.add(number, page)
            if writes.full():
                writes.flush()
                progress("full backup", writes.written, full.pages)
        writes.flush()
        txn, txn_time, pages = full.txn, None, full.pages
        damaged = None
        for ref in plan.segments:
            try:
                segment = repo.read_segment(plan.db_id, ref)
            except RepositoryError as exc:
                damaged = _damage(ref, exc)
                if not best_effort:
                    raise RestoreError(damaged, hint="Restore with --best-effort to get the latest "
                                       "point before the damage.") from exc
                break
            for transaction in segment.transactions:
                if transaction.txn <= txn:
                    continue
                if transaction.txn > plan.last_txn or (
                        plan.stop_time is not None and transaction.seen_at > plan.stop_time):
                    break
                for number, image in transaction.pages:
                    os.pwrite(fd, image, (number - 1) * size)
                txn, txn_time, pages = transaction.txn, transaction.seen_at, transaction.db_pages
            progress("transactions", txn - full.txn, max(1, plan.last_txn - full.txn))
        os.ftruncate(fd, pages * size)
        os.fsync(fd)
    finally:
        os.close(fd)
    return RestoreResult(output, plan.chain, txn, txn_time, pages, damaged)


class _PageWrites:
    """Pages to write, gathered and written in runs of consecutive page numbers, one system
    call per run: page by page, writing a large database costs more in calls than in bytes."""

    BATCH = 8192
    RUN = 512  # pages per call, under the system's limit on buffers per call

    def __init__(self, fd: int, page_size: int) -> None:
        self.fd = fd
        self.page_size = page_size
        self.pending: list[tuple[int, bytes]] = []
        self.written = 0

    def add(self, number: int, page: bytes) -> None:
        self.pending.append((number, page))

    def full(self) -> bool:
        return len(self.pending) >= self.BATCH

    def flush(self) -> None:
        self.pending.sort(key=lambda item: item[0])
        start = 0
        while start < len(self.pending):
            end = start + 1
            while (end < len(self.pending) and end - start < self.RUN
                   and self.pending[end][0] == self.pending[end - 1][0] + 1):
                end += 1
            first = self.pending[start][0]
            os.pwritev(self.fd, [page for _n, page in self.pending[start:end]],
                       (first - 1) * self.page_size)
            start = end
        self.written += len(self.pending)
        self.pending.clear()


def _damage(ref: SegmentRef, exc: RepositoryError) -> str:
    return (f"transactions {ref.first_txn} to {ref.last_txn} ({format_ms(ref.first_seen)} to "
            f"{format_ms(ref.last_seen)}) cannot be read: {exc.message}")


def _check(path: Path) -> None:
    uri = f"file:{quote(str(path.resolve()))}?immutable=1"
    connection = sqlite3.connect(uri, uri=True)
    try:
        result = [row[0] for row in connection.execute("PRAGMA integrity_check")]
    except sqlite3.DatabaseError as exc:
        raise RestoreError(f"the restored database does not open: {exc}") from exc
    finally:
        connection.close()
    if result != ["ok"]:
        raise RestoreError("the restored database fails PRAGMA integrity_check: "
                           + "; ".join(result[:5]),
                           hint="Run 'cps verify' on the repository and report this.")


def _remove_database(path: Path) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        with contextlib.suppress(FileNotFoundError):
            Path(f"{path}{suffix}").unlink()


def _quiet(_stage: str, _done: int, _total: int) -> None:
    return None
