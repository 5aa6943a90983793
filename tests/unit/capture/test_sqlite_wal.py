"""The WAL reader frame by frame against WAL files SQLite itself wrote."""

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
    checksum,
    frame_offset,
    parse_header,
    read_frames,
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
    """A WAL of 30 committed transactions of varying size, copied while SQLite holds it."""
    db = sqlite3.connect(tmp_path / "a.db", isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA wal_autocheckpoint=0")
    db.execute("CREATE TABLE t(x)")
    for i in range(30):
        db.execute("INSERT INTO t VALUES (?)", (os.urandom(700 * (i % 7)),))
    shutil.copy(tmp_path / "a.db-wal", tmp_path / "copy.wal")
    db.close()
    return tmp_path / "copy.wal"


def frames_of(path: Path) -> list:  # type: ignore[type-arg]
    header = parse_header(path.read_bytes()[:32])
    assert header is not None
    with path.open("rb") as handle:
        return list(read_frames(handle, header, 0, header.checksum))


def test_every_frame_of_a_real_wal_is_valid(wal: Path) -> None:
    frames = frames_of(wal)
    size = parse_header(wal.read_bytes()[:32]).page_size  # type: ignore[union-attr]
    assert len(frames) == (wal.stat().st_size - 32) // (FRAME_HEADER_SIZE + size)
    assert sum(1 for f in frames if f.commit_size) == 31  # CREATE TABLE and 30 inserts
    assert [f.index for f in frames] == list(range(1, len(frames) + 1))


def test_reading_resumes_from_any_frame(wal: Path) -> None:
    header = parse_header(wal.read_bytes()[:32])
    assert header is not None
    frames = frames_of(wal)
    middle = frames[len(frames) // 2]
    with wal.open("rb") as handle:
        rest = list(read_frames(handle, header, middle.index, middle.checksum))
    assert [f.checksum for f in rest] == [f.checksum for f in frames[middle.index:]]


def _flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def test_a_damaged_page_ends_the_valid_prefix(wal: Path) -> None:
    frames = frames_of(wal)
    size = len(frames[0].page)
    _flip(wal, frame_offset(6, size) + FRAME_HEADER_SIZE + 100)
    assert [f.index for f in frames_of(wal)] == [1, 2, 3, 4, 5]


def test_a_frame_of_another_generation_ends_the_valid_prefix(wal: Path) -> None:
    size = len(frames_of(wal)[0].page)
    _flip(wal, frame_offset(4, size) + 8)  # salt-1 of frame 4
    assert len(frames_of(wal)) == 3


def test_a_torn_last_frame_is_not_read(wal: Path) -> None:
    frames = frames_of(wal)
    size = len(frames[0].page)
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
