"""Segments for tests, from `Segment` values: built as capture builds them, or as the plaintext
records a reader opens."""

from __future__ import annotations

from cps.repository import BuiltSegment, RecordCompressor, Segment, SegmentBuilder, codec


def built(segment: Segment) -> BuiltSegment:
    builder = SegmentBuilder(segment.chain, segment.page_size, segment.start, RecordCompressor())
    for txn in segment.transactions:
        builder.add(txn)
    return builder.finish(segment.end)


def plain_records(segment: Segment) -> list[bytes]:
    header = codec.encode_segment_header(segment.chain, segment.page_size,
                                         len(segment.transactions), segment.start, segment.end)
    return [header, b"".join(codec.encode_transaction(txn) for txn in segment.transactions)]
