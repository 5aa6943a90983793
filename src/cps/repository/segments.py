"""Segments built transaction by transaction, as capture reads them from the WAL.

A segment's transactions are one record, compressed as one zstd frame; here each transaction is
compressed into that frame as soon as it is added, so a segment in the making holds compressed
bytes, not page images. A segment can therefore cover more transactions in the same memory, and a
larger segment compresses better: a page written again anywhere in it costs a reference, not a
copy (docs/benchmarks.md, repository size).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from . import codec
from .crypto import RecordCompressor
from .format import Sealing, encode_sealed_file
from .model import SegmentRef, Transaction, WalPosition


@dataclass(frozen=True, slots=True)
class BuiltSegment:
    """A segment ready to be written: its header fields and its compressed transactions."""

    chain: int
    page_size: int
    start: WalPosition
    end: WalPosition
    txns: tuple[int, int]  # the first and the last
    times: tuple[int, int]  # Transaction.time of the first and of the last
    seen_at: tuple[int, ...]  # of each transaction, in order
    compressed: tuple[bytes, ...]  # record 1, one zstd frame, in the pieces it was made in

    @property
    def ref(self) -> SegmentRef:
        return SegmentRef(self.chain, *self.txns, *self.times)

    def file_chunks(self, sealing: Sealing) -> Iterator[bytes]:
        """The whole segment file, in pieces."""
        header = codec.encode_segment_header(self.chain, self.page_size, len(self.seen_at),
                                             self.start, self.end)
        stored = [[sealing.seal(header)], sealing.seal_compressed(self.compressed)]
        return encode_sealed_file("segment", sealing.flags, stored)

    @property
    def compressed_size(self) -> int:
        return sum(map(len, self.compressed))


class SegmentBuilder:
    """One segment in the making. Only one at a time per `RecordCompressor`: starting a builder
    drops what an unfinished one had added."""

    def __init__(self, chain: int, page_size: int, start: WalPosition,
                 compressor: RecordCompressor) -> None:
        self.chain = chain
        self.page_size = page_size
        self.start = start
        self.page_bytes = 0  # of the page images added, before compression
        self._compressor = compressor
        self._txns = (0, 0)
        self._times = (0, 0)
        self._seen_at: list[int] = []
        compressor.start()

    def add(self, txn: Transaction) -> None:
        self._txns = (self._txns[0] if self._seen_at else txn.txn, txn.txn)
        self._times = (self._times[0] if self._seen_at else txn.time, txn.time)
        self._compressor.add(codec.encode_transaction(txn))
        self._seen_at.append(txn.seen_at)
        self.page_bytes += len(txn.pages) * self.page_size

    def finish(self, end: WalPosition) -> BuiltSegment:
        """The segment, with `end` the WAL position after its last transaction."""
        assert self._seen_at, "a segment holds at least one transaction"
        return BuiltSegment(self.chain, self.page_size, self.start, end, self._txns, self._times,
                            tuple(self._seen_at), self._compressor.finish())
