"""The container every repository file uses: header, records, footer. See docs/repository-format.md.

All integers little-endian.

    header, 16 bytes
    offset size  type  meaning
    0      8     bytes magic, one per file kind (KIND_MAGIC below)
    8      2     u16   format version (FORMAT_VERSION)
    10     2     u16   flags: bit 0 records are encrypted, bit 1 records are zstd-compressed
    12     4     u32   reserved, 0

    records, each
    0      4     u32   stored length n
    4      n     bytes stored record: plaintext, compressed with zstd when flag bit 1 is set, then,
                       when flag bit 0 is set, sealed with AES-256-GCM as nonce (12) | ciphertext | tag (16)

    footer, 44 bytes, at the end of the file
    0      4     u32   number of records
    4      8     u64   offset of the last record (packs: their index record), 0 if none
    12     32    bytes SHA-256 of every byte of the file before this field

The checksum covers stored bytes, so any file can be checked without the key (`sha256sum` of all but
the last 32 bytes). A reader refuses a file whose checksum, magic, version or framing is wrong, and
never returns a record of a file it has not checked whole. The header and footer layout above is the
same in every format version; only what is inside records may change.

Changing a constant or offset here changes the on-disk format: bump FORMAT_VERSION and describe the
change in docs/repository-format.md.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import CorruptFile, UnsupportedFormat

FORMAT_VERSION = 3
MIN_FORMAT_VERSION = 1
MAX_FORMAT_VERSION = 3

FLAG_ENCRYPTED = 1
FLAG_COMPRESSED = 2

KIND_MAGIC: dict[str, bytes] = {
    "config": b"CPSCONF\x00",
    "key": b"CPSKEY\x00\x00",
    "database": b"CPSDBASE",
    "chain": b"CPSCHAIN",
    "full": b"CPSFULL\x00",
    "segment": b"CPSSEGM\x00",
    "point": b"CPSPOINT",
    "pack": b"CPSPACK\x00",
    "status": b"CPSSTAT\x00",
    "pruned": b"CPSPRUNE",
    "standby": b"CPSSTBY\x00",
    "drill": b"CPSDRILL",
}

HEADER = struct.Struct("<8sHHI")
RECORD_LENGTH = struct.Struct("<I")
FOOTER = struct.Struct("<IQ32s")
MAX_RECORD = 1 << 30


@dataclass(frozen=True, slots=True)
class Sealing:
    """How records are stored: `seal` turns plaintext into stored bytes, `open` the reverse;
    `seal_compressed` stores a record compressed already, given in pieces
    (crypto.RecordCompressor), and returns the stored bytes in pieces."""

    flags: int
    seal: Callable[[bytes], bytes]
    open: Callable[[bytes], bytes]
    seal_compressed: Callable[[Sequence[bytes]], list[bytes]]


def encode_file(kind: str, sealing: Sealing, records: Iterable[bytes]) -> Iterator[bytes]:
    """Yield a whole file of `kind` holding `records` (plaintexts), chunk by chunk."""
    return encode_sealed_file(kind, sealing.flags, ([sealing.seal(record)] for record in records))


def encode_sealed_file(kind: str, flags: int, records: Iterable[Sequence[bytes]]
                       ) -> Iterator[bytes]:
    """Yield a whole file of `kind` whose records are sealed already (stored bytes, each record
    in one or more pieces), chunk by chunk, never copying a record whole."""
    digest = hashlib.sha256()
    header = HEADER.pack(KIND_MAGIC[kind], FORMAT_VERSION, flags, 0)
    digest.update(header)
    yield header
    offset, count, last = HEADER.size, 0, 0
    for pieces in records:
        length = sum(map(len, pieces))
        for chunk in (RECORD_LENGTH.pack(length), *pieces):
            digest.update(chunk)
            yield chunk
        last = offset
        offset += RECORD_LENGTH.size + length
        count += 1
    tail = struct.pack("<IQ", count, last)
    digest.update(tail)
    yield tail + digest.digest()


@dataclass(frozen=True, slots=True)
class RecordFile:
    """A checked repository file: its flags and where each record's stored bytes are."""

    path: str  # where the file is, for messages (storage.describe)
    data: bytes
    flags: int
    version: int  # the format version the file was written in
    spans: tuple[tuple[int, int], ...]  # (offset of stored bytes, length) per record

    def record(self, index: int, sealing: Sealing) -> bytes:
        start, length = self.spans[index]
        return _open_record(self.path, sealing, self.data[start : start + length])

    def records(self, sealing: Sealing) -> Iterator[bytes]:
        for index in range(len(self.spans)):
            yield self.record(index, sealing)


def read_file(path: Path, kind: str) -> RecordFile:
    """Read and check a whole local file of `kind`; raises CorruptFile or UnsupportedFormat."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise CorruptFile(f"cannot read {path}: {exc.strerror}", path=str(path)) from exc
    return parse_file(str(path), data, kind)


def parse_file(path: str, data: bytes, kind: str) -> RecordFile:
    """Check the bytes of a whole file of `kind`, found at `path` (for messages)."""
    flags, count = check_file(path, data, kind)
    version = HEADER.unpack_from(data)[1]
    return RecordFile(path, data, flags, version, _record_spans(path, data, count))


def check_file(path: str, data: bytes, kind: str, *, digest: bytes | None = None
               ) -> tuple[int, int]:
    """Check a whole file of `kind` (size, checksum, magic, version); return its flags and its
    number of records. `digest`, when given, is the SHA-256 of all but its last 32 bytes, which
    a caller hashing the file anyway has made already."""
    if len(data) < HEADER.size + FOOTER.size:
        raise CorruptFile(f"{path} is truncated ({len(data)} bytes)", path=path)
    magic, version, flags, _reserved = HEADER.unpack_from(data)
    count, _last, checksum = FOOTER.unpack_from(data, len(data) - FOOTER.size)
    # The checksum first: a damaged version field is damage, not a newer format. The header and
    # footer layout is the same in every format version, so this check never depends on it.
    if (digest or hashlib.sha256(memoryview(data)[:-32]).digest()) != checksum:
        raise CorruptFile(f"{path} fails its checksum: the file is damaged", path=path)
    if magic != KIND_MAGIC[kind]:
        raise CorruptFile(f"{path} is not a {kind} file (magic {magic!r})", path=path)
    if not MIN_FORMAT_VERSION <= version <= MAX_FORMAT_VERSION:
        raise UnsupportedFormat(
            f"{path} has format version {version}; this CPS reads {MIN_FORMAT_VERSION} to "
            f"{MAX_FORMAT_VERSION}",
            hint="Use the CPS release that wrote this repository, or a newer one.",
            path=path,
        )
    return flags, count


def check_frame(path: str, size: int, read: Callable[[int, int], bytes], kind: str) -> int:
    """Check a file of `kind` and `size` bytes by its ends alone, through `read(offset, length)`:
    its header (magic, version), its footer, and that its last record ends where the footer
    starts, which a truncated or extended file fails. Reads about 64 bytes, not the checksum:
    the cheap check of a large file (`cps verify repo` without --read-all). Returns its number
    of records."""
    if size < HEADER.size + FOOTER.size:
        raise CorruptFile(f"{path} is truncated ({size} bytes)", path=path)

    def exactly(offset: int, length: int) -> bytes:
        data = read(offset, length)
        if len(data) != length:  # shorter than its listing said
            raise CorruptFile(f"{path} is truncated", path=path)
        return data

    magic, version, _flags, _reserved = HEADER.unpack(exactly(0, HEADER.size))
    if magic != KIND_MAGIC[kind]:
        raise CorruptFile(f"{path} is not a {kind} file (magic {magic!r})", path=path)
    if not MIN_FORMAT_VERSION <= version <= MAX_FORMAT_VERSION:
        raise CorruptFile(f"{path} has format version {version}, which this CPS does not "
                          "read: its header is damaged, or a newer CPS wrote it", path=path)
    count, last, _checksum = FOOTER.unpack(exactly(size - FOOTER.size, FOOTER.size))
    end = size - FOOTER.size
    if count == 0 or not HEADER.size <= last <= end - RECORD_LENGTH.size:
        raise CorruptFile(f"{path} has a damaged footer, or is truncated", path=path)
    (length,) = RECORD_LENGTH.unpack(exactly(last, RECORD_LENGTH.size))
    if last + RECORD_LENGTH.size + length != end:
        raise CorruptFile(f"{path} does not end where its last record does: it is truncated "
                          "or damaged", path=path)
    return int(count)


def _record_spans(path: str, data: bytes, count: int) -> tuple[tuple[int, int], ...]:
    spans = []
    offset, end = HEADER.size, len(data) - FOOTER.size
    for _ in range(count):
        if offset + RECORD_LENGTH.size > end:
            raise CorruptFile(f"{path} has fewer records than its footer says", path=path)
        (length,) = RECORD_LENGTH.unpack_from(data, offset)
        offset += RECORD_LENGTH.size
        if length > MAX_RECORD or offset + length > end:
            raise CorruptFile(f"{path} has a record running past its end", path=path)
        spans.append((offset, length))
        offset += length
    if offset != end:
        raise CorruptFile(f"{path} has bytes between its records and footer", path=path)
    return tuple(spans)


def _open_record(path: str, sealing: Sealing, stored: bytes) -> bytes:
    try:
        return sealing.open(stored)
    except CorruptFile as exc:
        raise CorruptFile(f"{path}: {exc.message}", path=path) from exc
