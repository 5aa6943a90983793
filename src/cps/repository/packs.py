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
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from ..durable import atomic_write, make_folders
from ..errors import CorruptFile, MissingFile
from .codec import decode_pack_index, encode_pack_index
from .format import FOOTER, RECORD_LENGTH, Sealing, check_file, encode_file, read_file
from .naming import pack_path, parse_pack

PACK_TARGET_BYTES = 8 << 20
READ_AHEAD = 2  # packs being read and opened at once while a restore writes


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
        self.pages_flushed = 0

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
        self.pages_flushed += len(ids)
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
    """The (page id, offset, stored length) entries of one pack, read from its index record
    alone (the whole pack is checked when its pages are read); CorruptFile when unreadable."""
    try:
        with path.open("rb") as handle:
            size = handle.seek(0, os.SEEK_END)
            if size < 16 + FOOTER.size:
                raise CorruptFile(f"{path} is truncated", path=str(path))
            handle.seek(0)
            header = handle.read(16)
            handle.seek(size - FOOTER.size)
            _count, last, _checksum = FOOTER.unpack(handle.read(FOOTER.size))
            if not 16 <= last <= size - FOOTER.size - RECORD_LENGTH.size:
                raise CorruptFile(f"{path} has a damaged footer", path=str(path))
            handle.seek(last)
            (length,) = RECORD_LENGTH.unpack(handle.read(RECORD_LENGTH.size))
            if last + RECORD_LENGTH.size + length > size - FOOTER.size:
                raise CorruptFile(f"{path} has a damaged index", path=str(path))
            stored = handle.read(length)
        flags = int.from_bytes(header[10:12], "little")
        entries = decode_pack_index(sealing(flags).open(stored))
    except CorruptFile as exc:
        raise CorruptFile(f"{path}: {exc.message}" if str(path) not in exc.message else exc.message,
                          path=str(path)) from exc
    except OSError as exc:
        raise CorruptFile(f"cannot read {path}: {exc.strerror}", path=str(path)) from exc
    if any(offset + length > size for _id, offset, length in entries):
        raise CorruptFile(f"{path} has an index pointing past its end", path=str(path))
    return entries


@dataclass
class PageIndex:
    """Where pages live, and the packs whose index could not be read (with why)."""

    locations: dict[bytes, PageLocation]
    damaged: dict[Path, str]
    packs: list[Path] = field(default_factory=list)

    def find_damage(self) -> None:
        """Check every pack whole (slow: for error paths), setting aside those that fail."""
        for path in self.packs:
            if path in self.damaged:
                continue
            try:
                read_file(path, "pack")
            except CorruptFile as exc:
                self.damaged[path] = exc.message
            except FileNotFoundError:
                self.damaged[path] = f"{path} is missing"


def read_pages(
    ids: Sequence[bytes], index: PageIndex, sealing: Callable[[int], Sealing], needed_by: str
) -> Iterator[tuple[bytes, bytes]]:
    """Yield (page id, page image) for every id, pack by pack, each pack checked whole first.
    Packs are read, checked and opened by two threads ahead of the caller (reading is disk-bound,
    and hashing and decompression release the interpreter lock)."""
    by_pack: dict[Path, list[bytes]] = {}
    for page_id in dict.fromkeys(ids):
        location = index.locations.get(page_id)
        if location is None:
            raise _missing(page_id, index, needed_by)
        by_pack.setdefault(location.pack, []).append(page_id)

    def open_pack(pack: Path) -> list[tuple[bytes, bytes]]:
        data, flags = _read_checked(pack, needed_by)
        opener = sealing(flags)
        spans = ((page_id, index.locations[page_id]) for page_id in by_pack[pack])
        return [(page_id, opener.open(data[at.offset : at.offset + at.length]))
                for page_id, at in spans]

    with ThreadPoolExecutor(max_workers=READ_AHEAD, thread_name_prefix="cps-pack-reader") as pool:
        packs = list(by_pack)
        coming = [pool.submit(open_pack, pack) for pack in packs[:READ_AHEAD]]
        for number in range(len(packs)):
            pages = coming.pop(0).result()
            if number + READ_AHEAD < len(packs):
                coming.append(pool.submit(open_pack, packs[number + READ_AHEAD]))
            yield from pages


def _read_checked(pack: Path, needed_by: str) -> tuple[bytes, int]:
    try:
        data = pack.read_bytes()
    except FileNotFoundError as exc:
        raise MissingFile(f"pack {pack}, needed by {needed_by}, is missing", path=str(pack)) from exc
    except OSError as exc:
        raise CorruptFile(f"cannot read {pack}: {exc.strerror}", path=str(pack)) from exc
    flags, _count = check_file(pack, data, "pack")
    return data, flags


def load_locations(root: Path, sealing: Callable[[int], Sealing],
                   wanted: Iterable[bytes] | None = None) -> PageIndex:
    """Where every page (or every page in `wanted`) lives, from the packs' index records. A pack
    whose index cannot be read is set aside, not fatal: only a page that is needed and nowhere
    else is an error."""
    want = set(wanted) if wanted is not None else None
    index = PageIndex({}, {}, list(pack_files(root)))

    def entries_of(path: Path) -> list[tuple[bytes, int, int]] | str:
        try:
            return read_pack_index(path, sealing)
        except CorruptFile as exc:
            return exc.message

    with ThreadPoolExecutor(max_workers=4, thread_name_prefix="cps-index-reader") as pool:
        for path, entries in zip(index.packs, pool.map(entries_of, index.packs), strict=True):
            if isinstance(entries, str):
                index.damaged[path] = entries
                continue
            for page_id, offset, length in entries:
                if want is None or page_id in want:
                    index.locations[page_id] = PageLocation(path, offset, length)
    return index


def _missing(page_id: bytes, index: PageIndex, needed_by: str) -> MissingFile | CorruptFile:
    text = f"page {page_id.hex()[:16]}, needed by {needed_by}, is in no readable pack"
    index.find_damage()
    if index.damaged:  # most likely in one of them
        return CorruptFile(text + "; damaged packs: " + "; ".join(index.damaged.values()),
                           path=str(next(iter(index.damaged))))
    return MissingFile(text + "; a pack is missing from the repository")
