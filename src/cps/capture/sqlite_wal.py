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
Python loop over 1,026 words.
"""

from __future__ import annotations

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
_FRAME_HEADER = struct.Struct(">IIIIII")
_MASK = 0xFFFFFFFF
FRAMES_PER_READ = 64
_BIG_PAIR = struct.Struct(">II")
_LITTLE_PAIR = struct.Struct("<II")

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
class Frame:
    index: int  # 1-based position in this generation of the log
    page_number: int
    commit_size: int  # database size in pages after this commit, or 0 when not a commit frame
    page: bytes
    checksum: Checksum  # cumulative, after this frame


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


def read_frames(
    handle: BinaryIO, header: WalHeader, after: int, running: Checksum
) -> Iterator[Frame]:
    """Yield the valid frames that follow frame `after` (0 = from the start), whose cumulative
    checksum is `running`; stop at the first frame that is not valid."""
    size = FRAME_HEADER_SIZE + header.page_size
    handle.seek(frame_offset(after + 1, header.page_size))
    index = after
    pair = _words(header.big_endian)
    while True:
        block = handle.read(size * FRAMES_PER_READ)
        count = len(block) // size
        if count == 0:
            return
        contributions = _page_contributions(block[: count * size], count, header)
        for k in range(count):
            frame_start = k * size
            page_number, commit_size, salt1, salt2, c1, c2 = _FRAME_HEADER.unpack_from(
                block, frame_start)
            if (salt1, salt2) != (header.salt1, header.salt2) or page_number == 0:
                return
            word0, word1 = pair.unpack_from(block, frame_start)
            running = _pair_step(word0, word1, running)
            running = _carry(running, contributions[0][k], contributions[1][k], header.page_size)
            if running != (c1, c2):
                return
            index += 1
            page = block[frame_start + FRAME_HEADER_SIZE : frame_start + size]
            yield Frame(index, page_number, commit_size, page, running)
        if count < FRAMES_PER_READ:
            return


def _page_contributions(block: bytes, count: int, header: WalHeader
                        ) -> tuple[list[int], list[int]]:
    """For each frame in `block`, what its page adds to the checksum, all frames at once."""
    words = np.frombuffer(block, dtype=">u4" if header.big_endian else "<u4")
    pages = words.reshape(count, -1)[:, FRAME_HEADER_SIZE // 4 :].astype(np.uint64)
    weights = _weights(header.page_size // 8)
    first, second = pages[:, 0::2], pages[:, 1::2]
    c1 = first @ weights.a1 + second @ weights.b1
    c2 = first @ weights.a2 + second @ weights.b2
    return [int(v) for v in c1], [int(v) for v in c2]


def _carry(running: Checksum, add1: int, add2: int, page_size: int) -> Checksum:
    m00, m01, m10, m11 = _weights(page_size // 8).carry
    return ((m00 * running[0] + m01 * running[1] + add1) & _MASK,
            (m10 * running[0] + m11 * running[1] + add2) & _MASK)


def _words(big_endian: bool) -> struct.Struct:
    return _BIG_PAIR if big_endian else _LITTLE_PAIR


def _pair_step(first: int, second: int, running: Checksum) -> Checksum:
    """The checksum over one pair of words (a frame header's first eight bytes)."""
    s1 = (running[0] + first + running[1]) & _MASK
    return s1, (running[1] + second + s1) & _MASK


def checksum(data: bytes, start: Checksum, big_endian: bool) -> Checksum:
    """SQLite's WAL checksum of `data` (a multiple of 8 bytes), continuing from `start`."""
    words = np.frombuffer(data, dtype=">u4" if big_endian else "<u4").astype(np.uint64)
    weights = _weights(len(words) // 2)
    first, second = words[0::2], words[1::2]
    s1 = weights.carry[0] * start[0] + weights.carry[1] * start[1]
    s1 += int(first @ weights.a1) + int(second @ weights.b1)
    s2 = weights.carry[2] * start[0] + weights.carry[3] * start[1]
    s2 += int(first @ weights.a2) + int(second @ weights.b2)
    return s1 & _MASK, s2 & _MASK


@dataclass(frozen=True, slots=True)
class _Weights:
    carry: tuple[int, int, int, int]  # M^n, row-major: how (s1, s2) carries through n steps
    a1: npt.NDArray[np.uint64]
    b1: npt.NDArray[np.uint64]
    a2: npt.NDArray[np.uint64]
    b2: npt.NDArray[np.uint64]


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
    mask = np.uint64(_MASK)
    m00, m01, m10, m11 = before[:, 0], before[:, 1], before[:, 2], before[:, 3]
    carry = tuple(int(v) for v in powers[pairs])
    return _Weights(
        carry=(carry[0], carry[1], carry[2], carry[3]),
        a1=(m00 + m01) & mask, b1=m01, a2=(m10 + m11) & mask, b2=m11,
    )
