"""Reading SQLite's write-ahead log file: the transaction log CPS captures.

The WAL file, as SQLite writes it (https://www.sqlite.org/fileformat2.html#walformat), all integers
big-endian:

    WAL header, 32 bytes
    offset size  field
    0      4     magic: 0x377f0682 (checksums over little-endian words) or 0x377f0683 (big-endian)
    4      4     format version, 3007000
    8      4     database page size
    12     4     checkpoint sequence number (incremented each time the WAL is reset)
    16     4     salt-1: incremented at each reset
    20     4     salt-2: a new random value at each reset
    24     4     checksum-1 \\ over the first 24 bytes of the header
    28     4     checksum-2 /

    then frames, each a 24-byte header followed by one page
    offset size  field
    0      4     page number
    4      4     for a commit frame, the database size in pages after the commit; otherwise 0
    8      4     salt-1 \\ copies of the header's salts: a frame with other salts belongs to an
    12     4     salt-2 /  earlier generation of the log and is not part of this one
    16     4     checksum-1 \\ cumulative: over the header checksum, every earlier frame, this frame's
    20     4     checksum-2 /  first 8 bytes and its page

A frame is valid when its salts match the header and its checksum follows from the previous one;
the valid prefix ends at the first frame that is not. Transactions are the runs of valid frames that
end in a commit frame; frames after the last commit frame are a transaction still being written (or
torn by a crash) and are not committed. The checksum is SQLite's: for each pair of 32-bit words
(x0, x1), s1 += x0 + s2; s2 += x1 + s1 (mod 2^32). That recurrence is linear, so a whole frame's
checksum is computed here with numpy as two dot products against precomputed weights, instead of a
Python loop over 1,026 words; and since a frame can only be valid if the one before it is, each
frame is checked against the checksum stored in the frame before it, so that every frame of a read
is checked at once. Frames are handed on in runs, a transaction's worth at a time, with their pages
still in the block that was read.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import BinaryIO

import numpy as np
import numpy.typing as npt

WAL_HEADER_SIZE = 32
FRAME_HEADER_SIZE = 24
MAGIC_LITTLE_ENDIAN_CHECKSUM = 0x377F0682
MAGIC_BIG_ENDIAN_CHECKSUM = 0x377F0683
WAL_FORMAT_VERSION = 3007000

_HEADER = struct.Struct(">IIIIIIII")
_MASK = 0xFFFFFFFF
FRAMES_PER_READ = 256

Checksum = tuple[int, int]


@dataclass(frozen=True, slots=True)
class WalHeader:
    magic: int
    page_size: int
    checkpoint_seq: int
    salt1: int
    salt2: int
    checksum: Checksum

    @property
    def big_endian(self) -> bool:
        return self.magic == MAGIC_BIG_ENDIAN_CHECKSUM


@dataclass(frozen=True, slots=True)
class FrameRun:
    """Consecutive valid frames as read, without a copy: one frame per page number, back to back
    in `data` from `offset`, each a 24-byte header and a page. A run ends at a commit frame or where
    a read ended."""

    first: int  # 1-based position of its first frame in this generation of the log
    page_numbers: tuple[int, ...]
    commit_size: int  # its last frame's: the database size in pages after the commit, or 0
    checksum: Checksum  # cumulative, after its last frame
    data: bytes
    offset: int

    @property
    def last(self) -> int:
        return self.first + len(self.page_numbers) - 1

    def pages(self, page_size: int) -> list[tuple[int, bytes]]:
        """(page number, page image) of each frame, in log order."""
        frame_size = FRAME_HEADER_SIZE + page_size
        start = self.offset + FRAME_HEADER_SIZE
        return [(number, self.data[at : at + page_size]) for number, at in
                zip(self.page_numbers, range(start, start + len(self.page_numbers) * frame_size,
                                             frame_size), strict=True)]


def parse_header(data: bytes) -> WalHeader | None:
    """The WAL header in `data`, or None when there is none (short, wrong magic, bad checksum)."""
    if len(data) < WAL_HEADER_SIZE:
        return None
    magic, version, page_size, seq, salt1, salt2, c1, c2 = _HEADER.unpack_from(data)
    if magic not in (MAGIC_LITTLE_ENDIAN_CHECKSUM, MAGIC_BIG_ENDIAN_CHECKSUM):
        return None
    if version != WAL_FORMAT_VERSION or page_size < 512 or page_size & (page_size - 1):
        return None
    if checksum(data[:24], (0, 0), magic == MAGIC_BIG_ENDIAN_CHECKSUM) != (c1, c2):
        return None
    return WalHeader(magic, page_size, seq, salt1, salt2, (c1, c2))


def frame_offset(index: int, page_size: int) -> int:
    """Byte offset of frame `index` (1-based) in the WAL file."""
    return WAL_HEADER_SIZE + (index - 1) * (FRAME_HEADER_SIZE + page_size)


def read_runs(
    handle: BinaryIO, header: WalHeader, after: int, running: Checksum
) -> Iterator[FrameRun]:
    """Yield the valid frames that follow frame `after` (0 = from the start), whose cumulative
    checksum is `running`, as runs; stop at the first frame that is not valid."""
    frame_size = FRAME_HEADER_SIZE + header.page_size
    offset = frame_offset(after + 1, header.page_size)
    index = after
    while True:
        block = os.pread(handle.fileno(), frame_size * FRAMES_PER_READ, offset)
        count = len(block) // frame_size
        if count == 0:
            return
        checked = _check(block, count, header, running)
        start = 0
        for end in [*checked.commits, checked.valid - 1]:
            if end >= start:
                yield FrameRun(index + start + 1, tuple(checked.page_numbers[start : end + 1]),
                               checked.commit_sizes[end], checked.checksums[end], block,
                               start * frame_size)
                start = end + 1
        if checked.valid < FRAMES_PER_READ:
            return
        running = checked.checksums[-1]
        index += count
        offset += count * frame_size


@dataclass(frozen=True, slots=True)
class _Checked:
    valid: int  # how many frames, from the first, are valid
    page_numbers: list[int]
    commit_sizes: list[int]
    commits: list[int]  # positions of the valid commit frames
    checksums: list[Checksum]  # cumulative, after each valid frame


def _check(block: bytes, count: int, header: WalHeader, running: Checksum) -> _Checked:
    """Every frame of `block` checked at once. A frame is valid when its salts are this
    generation's and its stored checksum follows from the previous frame's stored one (from
    `running` for the first); the valid frames are those before the first that is not."""
    size = count * (FRAME_HEADER_SIZE + header.page_size) // 4
    fields = np.frombuffer(block, dtype=">u4", count=size).reshape(count, -1)
    # Frames left by an earlier generation follow the valid ones until the log outgrows them:
    # their checksums need no computing.
    this_generation = ((fields[:, 2] == header.salt1) & (fields[:, 3] == header.salt2)
                       & (fields[:, 0] != 0))
    count = _prefix(this_generation)
    fields = fields[:count]
    words = np.frombuffer(block, dtype=">u4" if header.big_endian else "<u4", count=size
                          ).reshape(-1, fields.shape[1])[:count]  # as the checksum reads them
    stored1, stored2 = fields[:, 4].astype(np.uint64), fields[:, 5].astype(np.uint64)
    before1 = np.concatenate(([np.uint64(running[0])], stored1[:-1]))
    before2 = np.concatenate(([np.uint64(running[1])], stored2[:-1]))
    # The header's first two words step the checksum once; the page then carries it on.
    step1 = before1 + before2 + words[:, 0]
    step2 = before2 + words[:, 1] + step1
    add1, add2 = _page_contributions(words[:, FRAME_HEADER_SIZE // 4 :], header.page_size)
    m00, m01, m10, m11 = _weights(header.page_size // 8).carry
    mask = np.uint64(_MASK)
    sum1 = (step1 * np.uint64(m00) + step2 * np.uint64(m01) + add1) & mask
    sum2 = (step1 * np.uint64(m10) + step2 * np.uint64(m11) + add2) & mask
    valid = _prefix((sum1 == stored1) & (sum2 == stored2))
    commit_sizes = fields[:valid, 1].tolist()
    return _Checked(valid, fields[:valid, 0].tolist(), commit_sizes,
                    [k for k, size in enumerate(commit_sizes) if size],
                    list(zip(stored1[:valid].tolist(), stored2[:valid].tolist(), strict=True)))


def _prefix(ok: npt.NDArray[np.bool_]) -> int:
    """How many leading entries of `ok` are true."""
    return len(ok) if ok.all() else int(np.argmin(ok))


def _page_contributions(pages: npt.NDArray[np.uint32], page_size: int
                        ) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.uint64]]:
    """What each page adds to the checksum, all pages at once."""
    sums = pages @ _weights(page_size // 8).words
    return sums[:, 0].astype(np.uint64), sums[:, 1].astype(np.uint64)


def checksum(data: bytes, start: Checksum, big_endian: bool) -> Checksum:
    """SQLite's WAL checksum of `data` (a multiple of 8 bytes), continuing from `start`."""
    words = np.frombuffer(data, dtype=">u4" if big_endian else "<u4")
    weights = _weights(len(words) // 2)
    add1, add2 = (int(v) for v in words @ weights.words)
    m00, m01, m10, m11 = weights.carry
    return ((m00 * start[0] + m01 * start[1] + add1) & _MASK,
            (m10 * start[0] + m11 * start[1] + add2) & _MASK)


@dataclass(frozen=True, slots=True)
class _Weights:
    carry: tuple[int, int, int, int]  # M^n, row-major: how (s1, s2) carries through n steps
    # What each word adds to (s1, s2): one row a word. The arithmetic is 32-bit and wraps, which
    # is exact here (the checksum is modulo 2^32).
    words: npt.NDArray[np.uint32]


@lru_cache(maxsize=8)
def _weights(pairs: int) -> _Weights:
    """One step maps (s1, s2) to M(s1, s2) + (x0, x0 + x1) with M = [[1, 1], [1, 2]]; after n
    steps, word pair k contributes M^(n-1-k) applied to (x0, x0 + x1)."""
    powers = np.zeros((pairs + 1, 4), dtype=np.uint64)
    powers[0] = (1, 0, 0, 1)
    for j in range(1, pairs + 1):
        p00, p01, p10, p11 = (int(v) for v in powers[j - 1])
        # M^j = M^(j-1) @ M
        powers[j] = ((p00 + p01) & _MASK, (p00 + 2 * p01) & _MASK,
                     (p10 + p11) & _MASK, (p10 + 2 * p11) & _MASK)
    before = powers[pairs - 1 :: -1][:pairs]  # M^(n-1-k) for k = 0 .. n-1
    m00, m01, m10, m11 = before[:, 0], before[:, 1], before[:, 2], before[:, 3]
    words = np.empty((2 * pairs, 2), dtype=np.uint64)
    words[0::2, 0], words[1::2, 0] = m00 + m01, m01  # x0 counts in M(x0, x0): first column + second
    words[0::2, 1], words[1::2, 1] = m10 + m11, m11
    carry = tuple(int(v) for v in powers[pairs])
    return _Weights(carry=(carry[0], carry[1], carry[2], carry[3]),
                    words=(words & np.uint64(_MASK)).astype(np.uint32))
