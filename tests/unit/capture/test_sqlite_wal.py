"""The WAL reader against WAL files SQLite itself wrote: every frame, checksum and commit."""

from __future__ import annotations

import os
import shutil
import sqlite3
import struct
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cps.capture.sqlite_wal import (
    FRAME_HEADER_SIZE,
    FRAMES_PER_READ,
    FrameRun,
    checksum,
    frame_offset,
    parse_header,
    read_runs,
)


def reference_checksum(data: bytes, s1: int, s2: int) -> tuple[int, int]:
    """SQLite's loop, word by word, as walChecksumBytes writes it."""
    words = struct.unpack(f"<{len(data) // 4}I", data)
    for i in range(0, len(words), 2):
        s1 = (s1 + words[i] + s2) & 0xFFFFFFFF
        s2 = (s2 + words[i + 1] + s1) & 0xFFFFFFFF
    return s1, s2


@given(st.binary(min_size=0, max_size=600).map(lambda b: b[: len(b) // 8 * 8]),
       st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1))
def test_vectorised_checksum_equals_the_loop(data: bytes, s1: int, s2: int) -> None:
    if data:
        assert checksum(data, (s1, s2), False) == reference_checksum(data, s1, s2)


@pytest.fixture
def wal(tmp_path: Path) -> Path:
    """A WAL of 30 committed transactions of varying size (one of them larger than a read),
    copied while SQLite holds it."""
    db = sqlite3.connect(tmp_path / "a.db", isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA wal_autocheckpoint=0")
    db.execute("CREATE TABLE t(x)")
    for i in range(30):
        size = 4096 * (2 * FRAMES_PER_READ + 40) if i == 20 else 700 * (i % 7)
        db.execute("INSERT INTO t VALUES (?)", (os.urandom(size),))
    shutil.copy(tmp_path / "a.db-wal", tmp_path / "copy.wal")
    db.close()
    return tmp_path / "copy.wal"


def runs_of(path: Path, after: int = 0, running: tuple[int, int] | None = None) -> list[FrameRun]:
    header = parse_header(path.read_bytes()[:32])
    assert header is not None
    with path.open("rb") as handle:
        return list(read_runs(handle, header, after, running or header.checksum))


def frames_of(path: Path) -> list[tuple[int, int, int, bytes]]:
    """(index, page number, commit size, page) of every valid frame, from the runs."""
    size = page_size(path)
    return [(run.first + k, number, run.commit_size if k == len(run.page_numbers) - 1 else 0, page)
            for run in runs_of(path) for k, (number, page) in enumerate(run.pages(size))]


def page_size(path: Path) -> int:
    header = parse_header(path.read_bytes()[:32])
    assert header is not None
    return header.page_size


def test_every_frame_of_a_real_wal_is_valid(wal: Path) -> None:
    frames = frames_of(wal)
    size = page_size(wal)
    assert len(frames) == (wal.stat().st_size - 32) // (FRAME_HEADER_SIZE + size)
    assert len(frames) > 2 * FRAMES_PER_READ, "the WAL should need several reads"
    assert sum(1 for f in frames if f[2]) == 31  # CREATE TABLE and 30 inserts
    assert [f[0] for f in frames] == list(range(1, len(frames) + 1))
    data = wal.read_bytes()
    for index, number, commit_size, page in frames:
        at = frame_offset(index, size)
        assert (number, commit_size) == struct.unpack_from(">II", data, at)
        assert page == data[at + FRAME_HEADER_SIZE : at + FRAME_HEADER_SIZE + size]


def test_every_run_ends_at_a_commit_or_where_a_read_ended(wal: Path) -> None:
    runs = runs_of(wal)
    ends = [run.last for run in runs if not run.commit_size]
    assert ends and all(end % FRAMES_PER_READ == 0 for end in ends)
    assert [run.first for run in runs[1:]] == [run.last + 1 for run in runs[:-1]]


def test_checksums_are_sqlites(wal: Path) -> None:
    """Each run's checksum is the one SQLite stored in its last frame, and the one the loop gives
    over the header and every frame before it."""
    data = wal.read_bytes()
    size = page_size(wal)
    running = reference_checksum(data[:24], 0, 0)
    end = 32
    for run in runs_of(wal):
        stop = frame_offset(run.last + 1, size)
        while end < stop:  # each frame: its first 8 bytes, then its page
            running = reference_checksum(data[end : end + 8], *running)
            running = reference_checksum(data[end + FRAME_HEADER_SIZE : end + 24 + size], *running)
            end += FRAME_HEADER_SIZE + size
        assert run.checksum == running
        assert run.checksum == struct.unpack_from(">II", data, stop - size - 8)


def test_reading_resumes_from_any_commit(wal: Path) -> None:
    runs = runs_of(wal)
    middle = next(run for run in runs[len(runs) // 2 :] if run.commit_size)
    rest = runs_of(wal, middle.last, middle.checksum)
    assert [run.checksum for run in rest if run.commit_size] == \
        [run.checksum for run in runs if run.commit_size and run.last > middle.last]


def _flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("frame", [6, FRAMES_PER_READ, FRAMES_PER_READ + 1, 2 * FRAMES_PER_READ + 7])
def test_a_damaged_page_ends_the_valid_prefix(wal: Path, frame: int) -> None:
    _flip(wal, frame_offset(frame, page_size(wal)) + FRAME_HEADER_SIZE + 100)
    assert [f[0] for f in frames_of(wal)] == list(range(1, frame))


def test_a_damaged_checksum_ends_the_valid_prefix(wal: Path) -> None:
    _flip(wal, frame_offset(9, page_size(wal)) + 20)  # checksum-2 of frame 9
    assert len(frames_of(wal)) == 8


def test_a_frame_of_another_generation_ends_the_valid_prefix(wal: Path) -> None:
    _flip(wal, frame_offset(4, page_size(wal)) + 8)  # salt-1 of frame 4
    assert len(frames_of(wal)) == 3


def test_a_torn_last_frame_is_not_read(wal: Path) -> None:
    frames = frames_of(wal)
    size = page_size(wal)
    with wal.open("r+b") as handle:
        handle.truncate(frame_offset(len(frames), size) + FRAME_HEADER_SIZE + size // 2)
    assert len(frames_of(wal)) == len(frames) - 1


def test_header_checks(wal: Path) -> None:
    data = wal.read_bytes()
    assert parse_header(data[:32]) is not None
    assert parse_header(data[:31]) is None
    assert parse_header(b"\x00" * 32) is None
    broken = bytearray(data[:32])
    broken[13] ^= 1  # checkpoint sequence, covered by the header checksum
    assert parse_header(bytes(broken)) is None
