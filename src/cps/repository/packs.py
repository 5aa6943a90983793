"""Page packs: content-addressed page images, many to a file, and the index that finds them.

A page is stored once per repository: its id is its SHA-256 (or HMAC under the key), and a writer
skips ids the repository already holds. A pack is written whole and renamed into place under the
SHA-256 of its bytes, so a pack file is complete or absent, and `sha256sum` checks it by hand.
The index of where each page lives is read from the packs' own index records, never stored apart:
`PageIndex` holds every readable pack's entries in arrays, so that a restore locates the hundreds
of thousands of pages of a full backup with one search. A pack's index record is read with a few
ranged reads (its header, its tail), never the whole pack, which matters in a bucket.
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Callable, Generator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np
import numpy.typing as npt
import zstandard

from ..errors import CorruptFile, MissingFile
from .codec import INDEX_COUNT, decode_pack_index, encode_pack_index
from .format import (
    FLAG_COMPRESSED,
    FOOTER,
    HEADER,
    KIND_MAGIC,
    RECORD_LENGTH,
    Sealing,
    check_file,
    encode_sealed_file,
)
from .model import PAGE_ID_SIZE
from .naming import PACKS, pack_key, parse_pack
from .storage import Storage

PACK_TARGET_BYTES = 8 << 20
READ_AHEAD = 2  # files (packs, segments) a restore reads, checks and opens at once ahead of it
# ... from a remote storage, where each read waits on a round trip and the store serves many at
# once: docs/benchmarks.md, "Restoring from a bucket".
REMOTE_READ_AHEAD = 8
INDEX_READERS = 4  # pack index records read at once: small reads, so waiting more than working
REMOTE_INDEX_READERS = 8
TAIL_READ = 64 << 10  # bytes read from a pack's end at once: its footer, and often its index record
# ... from a remote storage, where a request costs more than the bytes it brings: enough for the
# index record of a full pack of pages that compress to a quarter (docs/benchmarks.md).
REMOTE_TAIL_READ = 256 << 10

# codec.INDEX_ENTRY ("<32sQI", 44 bytes, no padding) as numpy reads it. An id is compared as `S32`,
# which is exact for fixed-width values; only converting one to `bytes` drops trailing zero bytes,
# so ids leave these arrays through `V32`, which keeps them whole.
INDEX_ENTRY = np.dtype([("id", "S32"), ("offset", "<u8"), ("length", "<u4")])

Ids = npt.NDArray[np.bytes_]
Rows = npt.NDArray[np.intp]
Page = bytes | memoryview  # a page image, or a view of one in a pack's decompressed pages
T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class PageLocation:
    pack: str  # the pack's key
    offset: int
    length: int
    flags: int  # the pack's header flags: how its records are stored


class PackWriter:
    """Collects new pages and writes them out in packs of about PACK_TARGET_BYTES."""

    def __init__(self, storage: Storage, sealing: Sealing, known: Callable[[bytes], bool]) -> None:
        self.storage = storage
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
        key = pack_key(hashlib.sha256(data).digest())
        self.storage.put(key, data)
        self.written_bytes += len(data)
        self.pages_flushed += len(ids)
        self.pending.clear()
        self.pending_bytes = 0
        return [(page_id, PageLocation(key, offset, length, self.sealing.flags))
                for page_id, offset, length in entries]


def _assemble(sealing: Sealing, ids: list[bytes], stored: list[bytes]
              ) -> tuple[bytes, list[tuple[bytes, int, int]]]:
    # Records are sealed already; the container seals with an identity so they are not sealed twice.
    offset = 16  # header size
    entries = []
    for page_id, record in zip(ids, stored, strict=True):
        entries.append((page_id, offset + RECORD_LENGTH.size, len(record)))
        offset += RECORD_LENGTH.size + len(record)
    index = sealing.seal(encode_pack_index(entries))
    return b"".join(encode_sealed_file("pack", sealing.flags, [[r] for r in [*stored, index]])), entries


@dataclass(frozen=True, slots=True)
class PackFile:
    key: str
    size: int


def pack_files(storage: Storage) -> list[PackFile]:
    """Every pack, listed at once (`packs/<2 hex>/<64 hex>.pack`), in the order of their keys."""
    found = []
    for entry in storage.list(PACKS, recursive=True):
        folder, _slash, name = entry.name.partition("/")
        pack_id = parse_pack(name)
        if pack_id is not None and folder == name[:2]:
            found.append(PackFile(f"{PACKS}/{entry.name}", entry.size))
    return found


def read_pack_index(storage: Storage, pack: PackFile, sealing: Callable[[int], Sealing]
                    ) -> list[tuple[bytes, int, int]]:
    """The (page id, offset, stored length) entries of one pack, read from its index record
    alone (the whole pack is checked when its pages are read); CorruptFile when unreadable."""
    record, _flags = _index_record(storage, pack, sealing)
    where = storage.describe(pack.key)
    entries = _in_pack(where, decode_pack_index, record)
    if any(offset + length > pack.size for _id, offset, length in entries):
        raise CorruptFile(f"{where} has an index pointing past its end", path=where)
    return entries


def read_pack_entries(storage: Storage, pack: PackFile, sealing: Callable[[int], Sealing]
                      ) -> tuple[npt.NDArray[np.void], int]:
    """`read_pack_index` as an array of INDEX_ENTRY, without a Python object per entry, and the
    pack's flags."""
    record, flags = _index_record(storage, pack, sealing)
    where = storage.describe(pack.key)
    entries = _in_pack(where, _decode_entries, record)
    if np.any(entries["offset"] + entries["length"] > pack.size):
        raise CorruptFile(f"{where} has an index pointing past its end", path=where)
    return entries, flags


def _decode_entries(record: bytes) -> npt.NDArray[np.void]:
    # The checks of codec.decode_pack_index, on the same layout.
    if len(record) < INDEX_COUNT.size:
        raise CorruptFile("a pack index is truncated")
    (count,) = INDEX_COUNT.unpack_from(record)
    if len(record) != INDEX_COUNT.size + count * INDEX_ENTRY.itemsize:
        raise CorruptFile("a pack index has the wrong length")
    return np.frombuffer(record, INDEX_ENTRY, offset=INDEX_COUNT.size)


def _index_record(storage: Storage, pack: PackFile, sealing: Callable[[int], Sealing]
                  ) -> tuple[bytes, int]:
    """The plaintext of a pack's index record, and the pack's flags: its header, then its tail,
    which holds the footer and, unless the index is large, the whole index record; the rest of
    a large one is read in one more request."""
    where, size = storage.describe(pack.key), pack.size
    if size < HEADER.size + FOOTER.size:
        raise CorruptFile(f"{where} is truncated", path=where)
    magic, _version, flags, _reserved = HEADER.unpack(_exactly(storage, pack, 0, HEADER.size))
    if magic != KIND_MAGIC["pack"]:
        raise CorruptFile(f"{where} is not a pack file (magic {magic!r})", path=where)
    tail_start = max(HEADER.size, size - (REMOTE_TAIL_READ if storage.remote else TAIL_READ))
    tail = _exactly(storage, pack, tail_start, size - tail_start)
    _count, last, _checksum = FOOTER.unpack_from(tail, len(tail) - FOOTER.size)
    if not HEADER.size <= last <= size - FOOTER.size - RECORD_LENGTH.size:
        raise CorruptFile(f"{where} has a damaged footer", path=where)
    if last < tail_start:
        tail = _exactly(storage, pack, last, tail_start - last) + tail
        tail_start = last
    (length,) = RECORD_LENGTH.unpack_from(tail, last - tail_start)
    record_start = last - tail_start + RECORD_LENGTH.size
    if last + RECORD_LENGTH.size + length > size - FOOTER.size:
        raise CorruptFile(f"{where} has a damaged index", path=where)
    stored = tail[record_start : record_start + length]
    return _in_pack(where, lambda data: sealing(flags).open(data), stored), flags


def _exactly(storage: Storage, pack: PackFile, offset: int, length: int) -> bytes:
    """`length` bytes of the pack at `offset`; CorruptFile when the pack ends before them (it
    is shorter than its listing said)."""
    data = storage.get_range(pack.key, offset, length)
    if len(data) != length:
        where = storage.describe(pack.key)
        raise CorruptFile(f"{where} is truncated", path=where)
    return data


def _in_pack(where: str, step: Callable[[bytes], T], data: bytes) -> T:
    """`step(data)`, its CorruptFile naming the pack."""
    try:
        return step(data)
    except CorruptFile as exc:
        raise CorruptFile(f"{where}: {exc.message}" if where not in exc.message else exc.message,
                          path=where) from exc


@dataclass
class PageIndex:
    """Where pages live, from the index records of every readable pack, and the packs whose index
    could not be read (with why). `locate` finds many ids at once, as entries (rows), and
    `location` says where one entry's page is, for a reader of a few pages at random."""

    storage: Storage = field(repr=False)
    packs: list[PackFile]
    flags: list[int]  # of each pack, as its header says (0 for one whose index is unreadable)
    damaged: dict[str, str]  # pack key: why its index cannot be read
    entries: npt.NDArray[np.void] = field(repr=False)  # INDEX_ENTRY rows, in the order of ids
    pack_numbers: npt.NDArray[np.int32] = field(repr=False)  # each entry's pack, in `packs`
    keys: npt.NDArray[np.uint64] = field(repr=False)  # each entry's id's first 8 bytes (`_keys`)

    def locate(self, ids: Ids) -> Rows:
        """The entry (row) holding each page id of `ids` (an `S32` array), -1 for one in no
        readable pack."""
        if not len(self.keys):
            return np.full(len(ids), -1, np.intp)
        wanted = _keys(ids)
        rows = np.minimum(np.searchsorted(self.keys, wanted), len(self.keys) - 1)
        found = self.entries["id"][rows] == ids
        # Ids that share their first 8 bytes are side by side, in order: look along them.
        for i in np.flatnonzero(~found & (self.keys[rows] == wanted)):
            row = rows[i] + 1
            while row < len(self.keys) and self.keys[row] == wanted[i]:
                if self.entries["id"][row] == ids[i]:
                    rows[i], found[i] = row, True
                    break
                row += 1
        return np.where(found, rows, -1)

    def require(self, ids: bytes, needed_by: str) -> Rows:
        """The entry holding each page id of `ids` (32 bytes each, back to back); MissingFile or
        CorruptFile (naming the damaged packs, after checking every pack) when one is in no
        readable pack. Of a page in several packs, the copy among its neighbours (`_near`)."""
        wanted = np.frombuffer(ids, "S32")
        rows = self.locate(wanted)
        unlocated = np.flatnonzero(rows < 0)
        if len(unlocated):
            at = int(unlocated[0]) * PAGE_ID_SIZE
            raise _missing(ids[at : at + PAGE_ID_SIZE], self, needed_by)
        return self._near(rows, wanted)

    def _near(self, rows: Rows, ids: Ids) -> Rows:
        """`rows`, with a page that is in several packs taken from the pack of the nearest page
        before it that is in one. A full backup's pack holds every page it was written with, those
        an earlier pack holds too, so its pages are then read in runs of consecutive places and
        written with few calls. Copies of an id are side by side in the entries."""
        after = np.minimum(rows + 1, len(self.keys) - 1)
        copied = (rows + 1 < len(self.keys)) & (self.entries["id"][after] == ids)
        alone = np.maximum.accumulate(np.where(copied, 0, np.arange(len(rows))))
        preferred = self.pack_numbers[rows[alone]]
        near, places, step = rows.copy(), np.flatnonzero(copied), 1
        while len(places):
            candidates = rows[places] + step
            inside = candidates < len(self.keys)
            places, candidates = places[inside], candidates[inside]
            copy = self.entries["id"][candidates] == ids[places]
            places, candidates = places[copy], candidates[copy]
            found = self.pack_numbers[candidates] == preferred[places]
            near[places[found]] = candidates[found]
            places, step = places[~found], step + 1
        return near

    def location(self, row: int) -> PageLocation:
        """Where the page of one entry is stored."""
        entry, number = self.entries[row], int(self.pack_numbers[row])
        return PageLocation(self.packs[number].key, int(entry["offset"]), int(entry["length"]),
                            self.flags[number])

    def find_damage(self) -> None:
        """Check every pack whole (slow: for error paths), setting aside those that fail."""
        for pack in self.packs:
            if pack.key in self.damaged:
                continue
            try:
                _read_checked(self.storage, pack.key, "a check of every pack")
            except (CorruptFile, MissingFile) as exc:
                self.damaged[pack.key] = exc.message


def _keys(ids: Ids) -> npt.NDArray[np.uint64]:
    # The search key: ids are hashes, so their first 8 bytes all but always tell them apart. Read
    # big-endian, keys are in the order of the ids they start.
    return np.ascontiguousarray(ids).view(">u8")[::4].astype(np.uint64)


def load_page_index(storage: Storage, sealing: Callable[[int], Sealing]) -> PageIndex:
    """Where every page lives, from the packs' index records. A pack whose index cannot be read is
    set aside, not fatal: only a page that is needed and nowhere else is an error."""
    packs = pack_files(storage)
    damaged: dict[str, str] = {}
    flags = [0] * len(packs)
    tables, numbers = [np.empty(0, INDEX_ENTRY)], [np.empty(0, np.int32)]

    def entries_of(pack: PackFile) -> tuple[npt.NDArray[np.void], int] | str:
        try:
            return read_pack_entries(storage, pack, sealing)
        except (CorruptFile, MissingFile) as exc:  # missing: deleted since the listing
            return exc.message

    readers = REMOTE_INDEX_READERS if storage.remote else INDEX_READERS
    with ThreadPoolExecutor(max_workers=readers, thread_name_prefix="cps-index-reader") as pool:
        for number, (pack, read) in enumerate(zip(packs, pool.map(entries_of, packs), strict=True)):
            if isinstance(read, str):
                damaged[pack.key] = read
                continue
            tables.append(read[0])
            flags[number] = read[1]
            numbers.append(np.full(len(read[0]), number, np.int32))
    entries = np.concatenate(tables)
    order = np.argsort(entries["id"], kind="stable")  # copies of a page side by side
    entries = entries[order]
    return PageIndex(storage, packs, flags, damaged, entries, np.concatenate(numbers)[order],
                     _keys(entries["id"]))


def read_pages(rows: Rows, index: PageIndex, sealing: Callable[[int], Sealing], needed_by: str,
               page_size: int) -> Generator[tuple[Rows, list[Page]], None, None]:
    """The pages of these entries of the index (`PageIndex.require`), pack by pack: yields the
    places in `rows` of one pack's pages, ascending, and those pages. Each pack is checked whole
    before any of its pages is used, and each page is opened once however often it is listed; a
    page that is not `page_size` bytes is damage. Packs are read, checked and opened by READ_AHEAD
    threads ahead of the caller (reading waits on the disk; hashing and decompression release the
    interpreter lock), in the order of their first place in `rows`."""
    packs = index.pack_numbers[rows]
    places = np.lexsort((np.arange(len(rows)), packs))
    groups = np.split(places, np.flatnonzero(np.diff(packs[places])) + 1) if len(places) else []
    groups.sort(key=lambda group: int(group[0]))

    def open_pack(group: Rows) -> tuple[Rows, list[Page]]:
        pack = index.packs[int(packs[group[0]])].key
        data, flags = _read_checked(index.storage, pack, needed_by)
        entries = index.entries[rows[group]]
        offsets, first, each = np.unique(entries["offset"], return_index=True, return_inverse=True)
        spans = list(zip(offsets.tolist(), entries["length"][first].tolist(), strict=True))
        opened = _decompress_at_once(data, spans, page_size) if flags == FLAG_COMPRESSED else None
        if opened is None:  # record by record: slower, and says which record is damaged
            opener, where = sealing(flags), index.storage.describe(pack)
            opened = [_open_page(where, data, span, opener, needed_by, page_size) for span in spans]
        return group, [opened[record] for record in each.tolist()]

    return read_ahead(open_pack, groups, "cps-pack-reader", depth=read_depth(index.storage))


def _decompress_at_once(data: bytes, spans: list[tuple[int, int]], page_size: int
                        ) -> list[Page] | None:
    """The pages of a pack whose records are only compressed, each record one zstd frame
    (docs/repository-format.md): all decompressed in one call, which leaves the interpreter lock
    to other threads for the whole pack instead of for each page in turn. None when that cannot be
    done (python-zstandard's C backend has the call), or when any frame does not decompress to
    exactly `page_size` bytes, for `_open_page` to say which record and why."""
    if "multi_decompress_to_buffer" not in zstandard.backend_features:
        return None
    frames = zstandard.BufferWithSegments(data, np.array(spans, "=u8").tobytes())
    try:
        pages = zstandard.ZstdDecompressor().multi_decompress_to_buffer(
            frames, decompressed_sizes=np.full(len(spans), page_size, "=u8").tobytes())
    except zstandard.ZstdError:
        return None
    # A BufferSegment is a buffer (a view of the one output buffer); the stubs do not say so.
    return [memoryview(pages[record]) for record in range(len(pages))]  # type: ignore[arg-type]


def _open_page(where: str, data: bytes, span: tuple[int, int], opener: Sealing, needed_by: str,
               page_size: int) -> Page:
    offset, length = span
    page = _in_pack(where, opener.open, data[offset : offset + length])
    if len(page) != page_size:
        raise CorruptFile(f"{where} holds a page of {len(page)} bytes at offset {offset}, where "
                          f"{needed_by} has pages of {page_size}", path=where)
    return page


@dataclass(frozen=True, slots=True)
class PackCheck:
    """What reading a whole pack found: why it cannot be used (None when it can), its pages, and
    the ids of those that do not hash to their content address."""

    problem: str | None
    pages: int
    bad_ids: tuple[bytes, ...]


def check_pack(storage: Storage, pack: PackFile, sealing: Callable[[int], Sealing],
               page_id: Callable[[bytes], bytes]) -> PackCheck:
    """Every byte of one pack (`cps verify repo --read-all`): its checksum, its name (the SHA-256
    of the whole file), its index, and every page opened and hashed against the id its index
    gives it. The pages are checked even when the file fails its checksum, to say which are
    damaged."""
    where = storage.describe(pack.key)
    data = storage.get(pack.key)
    before_checksum = hashlib.sha256(memoryview(data)[:-32])
    whole = before_checksum.copy()
    whole.update(memoryview(data)[-32:])
    try:
        flags, _count = check_file(where, data, "pack", digest=before_checksum.digest())
        problem = None
    except CorruptFile as exc:
        flags, problem = HEADER.unpack_from(data.ljust(HEADER.size, b"\0"))[2], exc.message
    if problem is None and whole.digest() != parse_pack(pack.key.rsplit("/", 1)[1]):
        problem = f"{where} is not named by the SHA-256 of its bytes: it was changed or misnamed"
    try:
        entries = read_pack_entries(storage, PackFile(pack.key, len(data)), sealing)[0]
    except CorruptFile as exc:
        return PackCheck(problem or exc.message, 0, ())
    bad = _unmatched_pages(data, entries, sealing(flags), page_id)
    if bad:
        problem = (f"{problem or where}; {len(bad)} of its {len(entries)} pages do not match "
                   "their content address")
    return PackCheck(problem, len(entries), bad)


def _unmatched_pages(data: bytes, entries: npt.NDArray[np.void], opener: Sealing,
                     page_id: Callable[[bytes], bytes]) -> tuple[bytes, ...]:
    """The ids of the pages of a pack (its index `entries`) that do not hash to their id."""
    ids = entries["id"].view("V32")
    spans = list(zip(entries["offset"].tolist(), entries["length"].tolist(), strict=True))
    if opener.flags == FLAG_COMPRESSED and spans:
        # A pack holds the pages of one full backup, of one page size; its first frame says it.
        offset, length = spans[0]
        page_size = zstandard.frame_content_size(data[offset : offset + length])
        pages = _decompress_at_once(data, spans, page_size) if page_size > 0 else None
        if pages is not None:
            # One comparison for the whole pack: converting each id on its own costs more than
            # hashing its page. Only a pack that differs is looked at page by page.
            hashed = list(map(page_id, pages))  # type: ignore[arg-type]
            if b"".join(hashed) == ids.tobytes():
                return ()
            return tuple(bytes(ids[i]) for i, digest in enumerate(hashed)
                         if digest != bytes(ids[i]))
    return tuple(bytes(ids[i]) for i, (offset, length) in enumerate(spans)
                 if not _page_matches(opener, data[offset : offset + length], bytes(ids[i]),
                                      page_id))


def _page_matches(opener: Sealing, stored: bytes, expected: bytes,
                  page_id: Callable[[bytes], bytes]) -> bool:
    try:
        return page_id(opener.open(stored)) == expected
    except CorruptFile:
        return False


def read_ahead(read: Callable[[T], R], items: Sequence[T], name: str, *, depth: int = READ_AHEAD
               ) -> Generator[R, None, None]:
    """`read(item)` of each item, in order, by `depth` threads (named `name`) working ahead of
    the caller; an error is raised when its item's turn comes."""
    with ThreadPoolExecutor(max_workers=depth, thread_name_prefix=name) as pool:
        coming = deque(pool.submit(read, item) for item in items[:depth])
        for number in range(len(items)):
            result = coming.popleft().result()
            if number + depth < len(items):
                coming.append(pool.submit(read, items[number + depth]))
            yield result


def read_depth(storage: Storage) -> int:
    """How many files to read ahead at once from `storage`."""
    return REMOTE_READ_AHEAD if storage.remote else READ_AHEAD


def _read_checked(storage: Storage, pack: str, needed_by: str) -> tuple[bytes, int]:
    where = storage.describe(pack)
    try:
        data = storage.get(pack)
    except MissingFile as exc:
        raise MissingFile(f"pack {where}, needed by {needed_by}, is missing", path=where) from exc
    flags, _count = check_file(where, data, "pack")
    return data, flags


def _missing(page_id: bytes, index: PageIndex, needed_by: str) -> MissingFile | CorruptFile:
    text = f"page {page_id.hex()[:16]}, needed by {needed_by}, is in no readable pack"
    index.find_damage()
    if index.damaged:  # most likely in one of them
        return CorruptFile(text + "; damaged packs: " + "; ".join(index.damaged.values()),
                           path=index.storage.describe(next(iter(index.damaged))))
    return MissingFile(text + "; a pack is missing from the repository")
