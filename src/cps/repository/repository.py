"""`Repository`: the backup-to-disk folder, its files and their write and read order.

Writers make every file whole before it gets its name (durable.atomic_write) and write data before
the records that refer to it: pages (packs) before the full backup that lists them; a chain's file
before its first full; segments in transaction order. A reader therefore never meets a reference
to something not yet written, whatever instant a crash happened at. Readers list files by name and
check each file whole before using it.
"""

from __future__ import annotations

import os
import struct
import time
import uuid
from collections.abc import Generator, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from ..durable import atomic_write, make_folders
from ..errors import (
    CorruptFile,
    MissingFile,
    NotARepository,
    RepositoryError,
    UnsupportedFormat,
    UsageError,
)
from . import codec, crypto, locks, naming
from .format import (
    FLAG_COMPRESSED,
    FLAG_ENCRYPTED,
    HEADER,
    KIND_MAGIC,
    RecordFile,
    Sealing,
    encode_file,
    read_file,
)
from .model import (
    Chain,
    ChainFolder,
    DatabaseInfo,
    FullBackup,
    FullRef,
    ProtectorStatus,
    PrunedRange,
    RecoveryPoint,
    Segment,
    SegmentRef,
    UnreadableFile,
)
from .packs import (
    PackWriter,
    Page,
    PageIndex,
    PageLocation,
    Rows,
    load_page_index,
    read_ahead,
    read_pages,
)
from .segments import BuiltSegment


class Repository:
    def __init__(self, root: Path, config: dict[str, Any], key: crypto.MasterKey | None) -> None:
        self.root = root
        self.config = config
        self.key = key
        flags = FLAG_COMPRESSED | (FLAG_ENCRYPTED if key else 0)
        self._sealing = crypto.sealing(flags, key)

    # Opening

    @classmethod
    def init(cls, root: Path, *, passphrase: str | None = None) -> Repository:
        """Create a repository in `root`, which must be absent or an empty folder."""
        if root.exists() and (not root.is_dir() or any(root.iterdir())):
            raise RepositoryError(
                f"{root} exists and is not an empty folder",
                hint="Give a new path, or an empty folder.")
        make_folders(root)
        key = None
        if passphrase is not None:
            if not passphrase:
                raise UsageError("the passphrase is empty")
            key, record = crypto.new_key_record(passphrase)
            atomic_write(root / "key", encode_file("key", crypto.sealing(0, None), [record]))
        config = {"repository_id": uuid.uuid4().hex, "created_at": _now(),
                  "encrypted": key is not None}
        atomic_write(root / "config",
                     encode_file("config", crypto.sealing(0, None), [codec.encode_json(config)]))
        return cls(root, config, key)

    @staticmethod
    def read_config(root: Path) -> dict[str, Any]:
        """The repository's settings (format, id, whether it is encrypted); needs no key."""
        try:
            checked = read_file(root / "config", "config")
        except FileNotFoundError:
            raise NotARepository(
                f"no CPS repository at {root}", hint=f"Create one with: cps repo init {root}"
            ) from None
        return codec.decode_json(checked.record(0, crypto.sealing(0, None)), "config")

    @classmethod
    def open(cls, root: Path, *, passphrase: str | None = None) -> Repository:
        config = cls.read_config(root)
        key = None
        if config.get("encrypted"):
            if passphrase is None:
                crypto.sealing(FLAG_ENCRYPTED, None)  # raises WrongPassphrase, saying how to give it
            try:
                key_file = read_file(root / "key", "key")
            except FileNotFoundError:
                raise MissingFile(
                    f"{root / 'key'} is missing: the repository is encrypted and its key is gone",
                    hint="Restore the key file from a copy of the repository; without it nothing "
                         "can be read.", path=str(root / "key")) from None
            key = crypto.open_key_record(key_file.record(0, crypto.sealing(0, None)), passphrase or "")
        return cls(root, config, key)

    @property
    def encrypted(self) -> bool:
        return self.key is not None

    def sealing_for(self, flags: int) -> Sealing:
        """How to open a file with these flags. In an encrypted repository every data file must be
        encrypted: a plain one was put there by someone without the key."""
        if self.key is not None and not flags & FLAG_ENCRYPTED:
            raise CorruptFile("an unencrypted file in an encrypted repository: it was not written "
                              "by CPS with this repository's key")
        if self.key is None and flags & FLAG_ENCRYPTED:
            raise CorruptFile("a file marked encrypted in a repository that is not: its header "
                              "is damaged")
        return crypto.sealing(flags, self.key)

    # Locks

    def protector_lock(self, db_id: str) -> AbstractContextManager[None]:
        return locks.hold(self.root / "locks" / f"protect-{naming.check_db_id(db_id)}",
                          exclusive=True)

    def protector_running(self, db_id: str) -> bool:
        """Whether a protector holds `db_id`'s lock now."""
        return locks.is_held(self.root / "locks" / f"protect-{naming.check_db_id(db_id)}")

    def reader_lock(self) -> AbstractContextManager[None]:
        """Held while reading or adding packs (restore, full backups): prune waits for it."""
        return locks.hold(self.root / "locks" / "repository", exclusive=False, wait=True)

    def prune_lock(self) -> AbstractContextManager[None]:
        """Held while deleting packs: waits for readers and writers of packs to finish."""
        return locks.hold(self.root / "locks" / "repository", exclusive=True, wait=True)

    # Databases and chains

    def add_database(self, info: DatabaseInfo) -> None:
        path = naming.database_dir(self.root, info.db_id) / "database"
        if not path.exists():
            make_folders(path.parent)
            self._write(path, "database", [codec.encode_record(info)])

    def databases(self) -> list[DatabaseInfo]:
        folder = self.root / "databases"
        names = sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []
        return [self.database(name) for name in names]

    def database(self, db_id: str) -> DatabaseInfo:
        """What the repository knows of `db_id`. The file only describes the database: when it
        is missing or damaged but the database's chains are there, an empty description stands
        in for it (no source path, page size 0), so its backups stay restorable."""
        folder = naming.database_dir(self.root, db_id)
        path = folder / "database"
        try:
            return codec.decode_record(DatabaseInfo, self._read_json(path, "database"), str(path))
        except (MissingFile, CorruptFile, UnsupportedFormat):
            if (folder / "chains").is_dir():
                return DatabaseInfo(db_id, "", 0, 0)
            if path.exists():
                raise
        known = sorted(p.name for p in (self.root / "databases").glob("*"))
        raise MissingFile(f"the repository holds no database {db_id!r}",
                          hint=f"Databases here: {', '.join(known) or 'none'}.")

    def write_chain(self, db_id: str, chain: Chain) -> None:
        folder = naming.chain_dir(self.root, db_id, chain.chain)
        make_folders(folder / "fulls")
        make_folders(folder / "segments")
        self._write(folder / "chain", "chain", [codec.encode_record(chain)])

    def chains(self, db_id: str) -> list[Chain]:
        """The chains whose chain file can be read, in order."""
        return [f.chain for f in self.chain_folders(db_id) if f.chain is not None]

    def chain_folders(self, db_id: str) -> list[ChainFolder]:
        """Every chain folder of the database, in order, each with its chain file when it can be
        read: a chain number is never used twice, whatever became of its files."""
        folder = naming.database_dir(self.root, db_id) / "chains"
        found = []
        for path in _listing(folder):
            number = naming.parse_chain_dir(path.name)
            if number is None:
                continue
            try:
                chain = codec.decode_record(Chain, self._read_json(path / "chain", "chain"),
                                            str(path / "chain"))
            except MissingFile:
                found.append(ChainFolder(number, None, "its chain file is missing"))
                continue
            except (CorruptFile, UnsupportedFormat) as exc:
                found.append(ChainFolder(number, None, f"its chain file is damaged: {exc.message}"))
                continue
            if chain.chain != number:
                found.append(ChainFolder(number, None, f"its chain file names chain {chain.chain}"))
                continue
            found.append(ChainFolder(number, chain, None))
        return found

    # Pages and full backups

    def page_writer(self) -> PackWriter:
        """A writer of new pages; the caller decides which pages are new."""
        return PackWriter(self.root, self._sealing, lambda _page_id: False)

    def page_id(self, page: bytes) -> bytes:
        return crypto.page_id(page, self.key)

    def page_index(self) -> PageIndex:
        """Where every page lives (the packs' index records): `PageIndex.locate` and `require`
        find many pages at once, `location` one entry's page for `read_page`."""
        return load_page_index(self.root, self.sealing_for)

    def read_pages(self, rows: Rows, index: PageIndex, needed_by: str, page_size: int
                   ) -> Generator[tuple[Rows, list[Page]], None, None]:
        """The pages of these entries of `index` (`PageIndex.require`), pack by pack, as the
        places in `rows` of one pack's pages and those pages (see packs.read_pages); `needed_by`
        names what needs them, for error messages."""
        return read_pages(rows, index, self.sealing_for, needed_by, page_size)

    def read_page(self, page_id: bytes, location: PageLocation) -> bytes:
        """One page, reading only its record of the pack: for a few pages of a large database at
        random. The pack's checksum covers the whole pack, so the page is checked against its
        content address instead; CorruptFile when it does not match."""
        pack = location.pack
        try:
            fd = os.open(pack, os.O_RDONLY)
        except FileNotFoundError as exc:
            raise MissingFile(f"pack {pack} is missing", path=str(pack)) from exc
        except OSError as exc:
            raise CorruptFile(f"cannot read {pack}: {exc.strerror}", path=str(pack)) from exc
        try:
            magic, _version, flags, _reserved = HEADER.unpack(os.pread(fd, HEADER.size, 0))
            stored = os.pread(fd, location.length, location.offset)
            page = self.sealing_for(flags).open(stored)
        except (OSError, struct.error, CorruptFile) as exc:
            raise CorruptFile(f"cannot read the page at offset {location.offset} of {pack}: {exc}",
                              path=str(pack)) from exc
        finally:
            os.close(fd)
        if magic != KIND_MAGIC["pack"] or self.page_id(page) != page_id:
            raise CorruptFile(f"{pack} does not hold the page its index names at offset "
                              f"{location.offset}: the pack is damaged",
                              hint="Run 'cps verify' on the repository.", path=str(pack))
        return page

    def write_full(self, db_id: str, full: FullBackup) -> FullRef:
        ref = FullRef(full.chain, full.txn, full.taken_at)
        path = naming.chain_dir(self.root, db_id, full.chain) / "fulls" / naming.format_full(ref)
        self._write(path, "full", codec.encode_full(full))
        return ref

    def fulls(self, db_id: str, chain: int) -> list[FullRef]:
        folder = naming.chain_dir(self.root, db_id, chain) / "fulls"
        refs = (naming.parse_full(chain, p.name) for p in _listing(folder))
        return sorted((r for r in refs if r), key=lambda r: r.txn)

    def read_full(self, db_id: str, ref: FullRef) -> FullBackup:
        path = naming.chain_dir(self.root, db_id, ref.chain) / "fulls" / naming.format_full(ref)
        return codec.decode_full(self._records(path, "full"))

    def full_path(self, db_id: str, ref: FullRef) -> Path:
        return naming.chain_dir(self.root, db_id, ref.chain) / "fulls" / naming.format_full(ref)

    # Log segments

    def write_segment(self, db_id: str, segment: BuiltSegment) -> SegmentRef:
        atomic_write(self.segment_path(db_id, segment.ref), segment.file_chunks(self._sealing))
        return segment.ref

    def segments(self, db_id: str, chain: int) -> list[SegmentRef]:
        folder = naming.chain_dir(self.root, db_id, chain) / "segments"
        refs = (naming.parse_segment(chain, p.name) for p in _listing(folder))
        return sorted((r for r in refs if r), key=lambda r: r.first_txn)

    def read_segment(self, db_id: str, ref: SegmentRef) -> Segment:
        """The segment `ref` names, checked whole and against its name (chain, transactions and
        their times): planning trusts names, so a file that disagrees with its own is damaged."""
        path = self.segment_path(db_id, ref)
        checked = self._checked(path, "segment")
        segment = codec.decode_segment(checked.records(self._sealing_of(checked)), checked.version)
        first, last = segment.transactions[0], segment.transactions[-1]
        found = SegmentRef(segment.chain, first.txn, last.txn, first.time, last.time)
        if found != ref:
            raise CorruptFile(f"{path} holds transactions {first.txn} to {last.txn} of chain "
                              f"{segment.chain}, which its name does not say: the file is damaged "
                              "or misplaced", path=str(path))
        return segment

    def read_segments(self, db_id: str, refs: Sequence[SegmentRef]) -> Generator[Segment, None, None]:
        """`read_segment` of each ref, in order, read ahead of the caller by a few threads; the
        error of a segment that cannot be read is raised when its turn comes."""
        return read_ahead(lambda ref: self.read_segment(db_id, ref), refs, "cps-segment-reader")

    def segment_path(self, db_id: str, ref: SegmentRef) -> Path:
        folder = naming.chain_dir(self.root, db_id, ref.chain) / "segments"
        return folder / naming.format_segment(ref)

    # Recovery points and status

    def write_point(self, db_id: str, point: RecoveryPoint) -> None:
        path = self.point_path(db_id, point)
        make_folders(path.parent)
        self._write(path, "point", [codec.encode_record(point)])

    def point_path(self, db_id: str, point: RecoveryPoint) -> Path:
        return (naming.database_dir(self.root, db_id) / "points"
                / naming.format_point(point.txn, point.name))

    def points(self, db_id: str) -> tuple[list[RecoveryPoint], list[UnreadableFile]]:
        """The recovery points, by transaction, and the point files that cannot be read: a
        damaged one loses its name, never a restore (its transaction is in its file name)."""
        folder = naming.database_dir(self.root, db_id) / "points"
        found, unreadable = [], []
        for path in _listing(folder):
            if path.suffix != ".point":
                continue
            try:
                found.append(codec.decode_record(RecoveryPoint, self._read_json(path, "point"),
                                                 str(path)))
            except (CorruptFile, UnsupportedFormat) as exc:
                unreadable.append(UnreadableFile(str(path), naming.parse_point(path.name),
                                                 exc.message))
        return sorted(found, key=lambda p: (p.txn, p.created_at)), unreadable

    def write_status(self, db_id: str, status: ProtectorStatus) -> None:
        self._write(naming.database_dir(self.root, db_id) / "status", "status",
                    [codec.encode_record(status)])

    def status(self, db_id: str) -> ProtectorStatus | None:
        """The protector's latest report, None when there is none; CorruptFile when damaged."""
        path = naming.database_dir(self.root, db_id) / "status"
        try:
            return codec.decode_record(ProtectorStatus, self._read_json(path, "status"), str(path))
        except MissingFile:
            return None

    # Prune records

    def write_pruned(self, db_id: str, ranges: list[PrunedRange]) -> Path:
        """A new prune record listing `ranges` (written before what they name is deleted)."""
        folder = naming.database_dir(self.root, db_id) / "pruned"
        make_folders(folder)
        path = folder / naming.format_pruned(_now())
        self._write(path, "pruned", [codec.encode_pruned(ranges)])
        return path

    def pruned(self, db_id: str) -> tuple[list[tuple[Path, list[PrunedRange]]], list[UnreadableFile]]:
        """Every prune record (its path and ranges), and those that cannot be read."""
        folder = naming.database_dir(self.root, db_id) / "pruned"
        found, unreadable = [], []
        for path in _listing(folder):
            if not naming.is_pruned(path.name):
                continue
            try:
                record = next(self._records(path, "pruned"))
                found.append((path, codec.decode_pruned(record, str(path))))
            except (CorruptFile, UnsupportedFormat, StopIteration) as exc:
                message = exc.message if isinstance(exc, CorruptFile | UnsupportedFormat) else \
                    "it holds no record"
                unreadable.append(UnreadableFile(str(path), None, message))
        return found, unreadable

    # Files

    def _write(self, path: Path, kind: str, records: Iterable[bytes]) -> None:
        atomic_write(path, b"".join(encode_file(kind, self._sealing, records)))

    def _records(self, path: Path, kind: str) -> Iterator[bytes]:
        checked = self._checked(path, kind)
        return checked.records(self._sealing_of(checked))

    def _checked(self, path: Path, kind: str) -> RecordFile:
        try:
            return read_file(path, kind)
        except FileNotFoundError as exc:
            raise MissingFile(f"{path} is missing", path=str(path)) from exc

    def _sealing_of(self, checked: RecordFile) -> Sealing:
        try:
            return self.sealing_for(checked.flags)
        except CorruptFile as exc:
            raise CorruptFile(f"{checked.path}: {exc.message}", path=str(checked.path)) from exc

    def _read_json(self, path: Path, kind: str) -> dict[str, Any]:
        try:
            return codec.decode_json(next(self._records(path, kind)), str(path))
        except StopIteration:
            raise CorruptFile(f"{path} holds no record", path=str(path)) from None


def _listing(folder: Path) -> list[Path]:
    return sorted(folder.iterdir()) if folder.is_dir() else []


def _now() -> int:
    return int(time.time() * 1000)
