"""Page packs: content-addressed page images, many to a file, and the index that finds them.

A page is stored once per repository: its id is its SHA-256 (or HMAC under the key), and a writer
skips ids the repository already holds. A pack is written whole and renamed into place under the
SHA-256 of its bytes, so a pack file is complete or absent, and `sha256sum` checks it by hand.
The index of where each page lives is read from the packs' own index records, never stored apart.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..durable import atomic_write, make_folders
from ..errors import CorruptFile, MissingFile
from .codec import decode_pack_index, encode_pack_index
from .format import FOOTER, RECORD_LENGTH, Sealing, encode_file, read_file
from .naming import pack_path, parse_pack

PACK_TARGET_BYTES = 16 << 20


@dataclass(frozen=True, slots=True)
class PageLocation:
    pack: Path
    offset: int
    length: int


class PackWriter:
    """Collects new pages and writes them out in packs of about PACK_TARGET_BYTES."""

    def __init__(self, root: Path, sealing: Sealing, known: Callable[[bytes], bool]) -> None:
        self.root = root
        self.sealing = sealing
        self.known = known
        self.pending: dict[bytes, bytes] = {}
        self.pending_bytes = 0
        self.written_bytes = 0

    def add(self, page_id: bytes, page: bytes) -> None:
        if page_id in self.pending or self.known(page_id):
            return
        self.pending[page_id] = page
        self.pending_bytes += len(page)
        if self.pending_bytes >= PACK_TARGET_BYTES:
            self.flush()

    def flush(self) -> list[tuple[bytes, PageLocation]]:
        """Write the pending pages as one pack, durably; return where each page now lives."""
        if not self.pending:
            return []
        ids = list(self.pending)
        stored = [self.sealing.seal(self.pending[i]) for i in ids]
        data, entries = _assemble(self.sealing, ids, stored)
        pack_id = hashlib.sha256(data).digest()
        path = pack_path(self.root, pack_id)
        make_folders(path.parent)
        atomic_write(path, data)
        self.written_bytes += len(data)
        self.pending.clear()
        self.pending_bytes = 0
        return [(page_id, PageLocation(path, offset, length)) for page_id, offset, length in entries]


def _assemble(sealing: Sealing, ids: list[bytes], stored: list[bytes]
              ) -> tuple[bytes, list[tuple[bytes, int, int]]]:
    # Records are sealed already; the container seals with an identity so they are not sealed twice.
    offset = 16  # header size
    entries = []
    for page_id, record in zip(ids, stored, strict=True):
        entries.append((page_id, offset + RECORD_LENGTH.size, len(record)))
        offset += RECORD_LENGTH.size + len(record)
    index = sealing.seal(encode_pack_index(entries))
    passthrough = Sealing(sealing.flags, lambda b: b, lambda b: b)
    return b"".join(encode_file("pack", passthrough, [*stored, index])), entries


def pack_files(root: Path) -> Iterator[Path]:
    packs = root / "packs"
    if not packs.is_dir():
        return
    for folder in sorted(packs.iterdir()):
        for path in sorted(folder.iterdir()):
            if parse_pack(path.name) is not None:
                yield path


def read_pack_index(path: Path, sealing: Callable[[int], Sealing]) -> list[tuple[bytes, int, int]]:
    """The (page id, offset, stored length) entries of one pack, read from its index record."""
    with path.open("rb") as handle:
        header = handle.read(16)
        handle.seek(-FOOTER.size, os.SEEK_END)
        footer = handle.read(FOOTER.size)
        if len(header) < 16 or len(footer) < FOOTER.size:
            raise CorruptFile(f"{path} is truncated", path=str(path))
        _count, last, _checksum = FOOTER.unpack(footer)
        handle.seek(last)
        (length,) = RECORD_LENGTH.unpack(handle.read(RECORD_LENGTH.size))
        stored = handle.read(length)
    flags = int.from_bytes(header[10:12], "little")
    try:
        return decode_pack_index(sealing(flags).open(stored))
    except CorruptFile as exc:
        raise CorruptFile(f"{path}: {exc.message}", path=str(path)) from exc


def read_pages(
    ids: Sequence[bytes], locations: dict[bytes, PageLocation], sealing: Callable[[int], Sealing]
) -> Iterator[tuple[bytes, bytes]]:
    """Yield (page id, page image) for every id, pack by pack, each pack checked whole first."""
    by_pack: dict[Path, list[bytes]] = {}
    for page_id in dict.fromkeys(ids):
        location = locations.get(page_id)
        if location is None:
            raise MissingFile(f"page {page_id.hex()[:16]} is in no pack of the repository")
        by_pack.setdefault(location.pack, []).append(page_id)
    for pack, wanted in by_pack.items():
        try:
            checked = read_file(pack, "pack")
        except FileNotFoundError as exc:
            raise MissingFile(f"pack {pack} is missing", path=str(pack)) from exc
        opener = sealing(checked.flags)
        for page_id in wanted:
            location = locations[page_id]
            stored = checked.data[location.offset : location.offset + location.length]
            yield page_id, opener.open(stored)


def load_locations(root: Path, sealing: Callable[[int], Sealing],
                   wanted: Iterable[bytes] | None = None) -> dict[bytes, PageLocation]:
    """Where every page (or every page in `wanted`) lives, from the packs' index records."""
    want = set(wanted) if wanted is not None else None
    locations: dict[bytes, PageLocation] = {}
    for path in pack_files(root):
        for page_id, offset, length in read_pack_index(path, sealing):
            if want is None or page_id in want:
                locations[page_id] = PageLocation(path, offset, length)
    return locations
