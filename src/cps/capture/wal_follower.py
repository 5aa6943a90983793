"""Following a live WAL file: committed transactions, in order, each exactly once.

The follower remembers where it is (generation and last frame read, with the cumulative checksum
there) and, at each poll, reads the valid frames after that point and hands back those that form
complete transactions. Frames after the last commit frame are left for the next poll: they belong to
a transaction still being written.

When the WAL header changes, SQLite has reset the log. The pinning protocol (pinning.py) guarantees
that a reset only happens once every frame of the old generation was read, so a reset to the next
generation (salt-1 + 1) continues the chain. Anything else (other salts, a header that does not
parse, a missing file) means frames may have been lost, and the follower says so with
`ContinuityLost` and a reason in plain words.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ..repository import WalPosition
from .sqlite_wal import WAL_HEADER_SIZE, FrameRun, WalHeader, parse_header, read_runs


class ContinuityLost(Exception):
    """The WAL no longer proves that nothing was lost since the last position."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class CommittedTxn:
    commit_size: int  # database pages after it
    pages: tuple[tuple[int, bytes], ...]  # (page number, page image) in log order


@dataclass
class WalFollower:
    wal_path: Path
    header: WalHeader | None = None
    frame: int = 0
    checksum: tuple[int, int] = (0, 0)
    # page number -> last frame index holding it, in this generation, up to `frame`
    page_frames: dict[int, int] = field(default_factory=dict)
    # database size after the last transaction read in this generation; None: see the file
    db_pages: int | None = None

    @property
    def position(self) -> WalPosition:
        if self.header is None:
            return WalPosition(0, 0, 0, 0, (0, 0))
        h = self.header
        return WalPosition(h.checkpoint_seq, h.salt1, h.salt2, self.frame, self.checksum)

    def start_fresh(self) -> list[CommittedTxn]:
        """Start at the beginning of the current generation; return what it already holds."""
        self.begin_generation()
        return self.poll()[0]

    def begin_generation(self) -> None:
        """Stand before the first frame of the current generation (or of the next WAL, when
        there is none): its frames are what the next poll reads."""
        self.header = self._read_header()
        self.frame, self.page_frames, self.db_pages = 0, {}, None
        self.checksum = self.header.checksum if self.header else (0, 0)

    def resume(self, position: WalPosition) -> None:
        """Continue after `position`, proving first that the WAL still holds it unchanged."""
        header = self._read_header()
        if header is None:
            # Gone or empty: SQLite checkpointed and deleted it, which it does when the last
            # connection closes, so the database may have changed with no log of it.
            raise ContinuityLost("the WAL is gone or empty since the last capture: the database "
                                 "may have been changed and checkpointed while not protected")
        if (header.salt1, header.salt2) != (position.salt1, position.salt2):
            raise ContinuityLost(
                "the WAL was reset while the database was not protected "
                f"(salt {position.salt1:#010x} -> {header.salt1:#010x})")
        self.header, self.frame, self.checksum = header, 0, header.checksum
        self.page_frames, self.db_pages = {}, None
        if position.frame:
            for run in self._runs_after(0, header.checksum):
                if run.last > position.frame:
                    break
                self._advance(run)
        if (self.frame, self.checksum) != (position.frame, position.checksum):
            raise ContinuityLost(
                f"the WAL no longer holds frame {position.frame} as it was captured")

    def poll(self, max_bytes: int | None = None) -> tuple[list[CommittedTxn], bool]:
        """The transactions committed since the last poll, in commit order, and whether that is
        all of them: with `max_bytes`, reading stops after the transaction that passes it."""
        header = self._read_header()
        if header is None:
            return [], True  # truncated to nothing by a checkpoint: nothing until the next write
        if self.header is None or _generation(header) != _generation(self.header):
            self._enter_generation(header)
        pending: list[FrameRun] = []  # of a transaction that spans reads
        committed: list[CommittedTxn] = []
        read = 0
        for run in self._runs_after(self.frame, self.checksum):
            pending.append(run)
            if not run.commit_size:
                continue
            pages = [page for part in pending for page in part.pages(header.page_size)]
            committed.append(CommittedTxn(run.commit_size, tuple(pages)))
            for part in pending:
                self._advance(part)
            read += len(pages) * header.page_size
            pending = []
            if max_bytes is not None and read >= max_bytes:
                return committed, False
        return committed, True

    def _enter_generation(self, header: WalHeader) -> None:
        old = self.header
        # SQLite adds one to salt-1 at each reset of an existing WAL (the checkpoint sequence is
        # not reliable: a process that did not recover the WAL itself counts from zero), and
        # draws new random salts for a WAL made from nothing.
        if old is not None and header.salt1 != (old.salt1 + 1) & 0xFFFFFFFF:
            raise ContinuityLost(
                "the WAL was replaced or reset more than once between two reads "
                f"(salt {old.salt1:#010x} -> {header.salt1:#010x})")
        self.header, self.frame, self.checksum = header, 0, header.checksum
        self.page_frames, self.db_pages = {}, None

    def _advance(self, run: FrameRun) -> None:
        self.frame, self.checksum = run.last, run.checksum
        self.page_frames.update(zip(run.page_numbers, range(run.first, run.last + 1), strict=True))
        if run.commit_size:
            self.db_pages = run.commit_size

    def _runs_after(self, after: int, running: tuple[int, int]) -> Iterator[FrameRun]:
        assert self.header is not None
        try:
            with self.wal_path.open("rb") as handle:
                yield from read_runs(handle, self.header, after, running)
        except FileNotFoundError:
            return

    def _read_header(self) -> WalHeader | None:
        try:
            with self.wal_path.open("rb") as handle:
                return parse_header(handle.read(WAL_HEADER_SIZE))
        except FileNotFoundError:
            return None


def _generation(header: WalHeader) -> tuple[int, int, int]:
    return header.checkpoint_seq, header.salt1, header.salt2
