"""`Repository`: the backup repository, its files and their write and read order.

Its files live in a `Storage` (storage/): a local folder or an S3 bucket, the same files under the
same names in both. Writers make every file whole before it gets its name (Storage.put) and write
data before the records that refer to it: pages (packs) before the full backup that lists them; a chain's file
before its first full; segments in transaction order. A reader therefore never meets a reference
to something not yet written, whatever instant a crash happened at. Readers list files by name and
check each file whole before using it.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Generator, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from ..config import Location
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
    RecordFile,
    Sealing,
    encode_file,
    parse_file,
)
from .model import (
    Chain,
    ChainFolder,
    DatabaseInfo,
    DrillRecord,
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
    read_depth,
    read_pages,
)
from .segments import BuiltSegment
from .storage import (
    ObjectLock,
    RangeCache,
    Storage,
    coordination_folder,
    lock_new_files,
    open_storage,
)


class Repository:
    def __init__(self, location: Location, storage: Storage, config: dict[str, Any],
                 key: crypto.MasterKey | None) -> None:
        self.location = location
        self.storage = storage
        self.config = config
        self.key = key
        if config.get("object_lock") is not None:
            lock_new_files(storage, ObjectLock.from_json(config["object_lock"]), _retained)
        flags = FLAG_COMPRESSED | (FLAG_ENCRYPTED if key else 0)
        self._sealing = crypto.sealing(flags, key)
        # Pages read one at a time: from a bucket, through a cache of the blocks around them.
        self._page_reads: Storage | RangeCache = RangeCache(storage) if storage.remote else storage
        # Locks and requests: the folder itself, or a local one for a repository in a bucket.
        self._coordination = coordination_folder(location)

    # Opening

    @classmethod
    def init(cls, location: Location, *, passphrase: str | None = None,
             object_lock: ObjectLock | None = None) -> Repository:
        """Create a repository at `location`: an absent or empty folder, or a bucket prefix
        holding nothing. With `object_lock` (a bucket with Object Lock only), every file it never
        replaces is put with that retention."""
        storage = open_storage(location)
        if object_lock is not None:
            lock_new_files(storage, object_lock, _retained, check_bucket=True)
        in_the_way = isinstance(location, Path) and location.exists() and not location.is_dir()
        if in_the_way or storage.list(""):
            raise RepositoryError(
                f"{storage.describe()} exists and is not empty",
                hint="Give a new path or prefix, or an empty folder.")
        key = None
        if passphrase is not None:
            if not passphrase:
                raise UsageError("the passphrase is empty")
            key, record = crypto.new_key_record(passphrase)
            storage.put("key", b"".join(encode_file("key", crypto.sealing(0, None), [record])))
        config = {"repository_id": uuid.uuid4().hex, "created_at": _now(),
                  "encrypted": key is not None,
                  "object_lock": object_lock.to_json() if object_lock else None}
        storage.put("config", b"".join(
            encode_file("config", crypto.sealing(0, None), [codec.encode_json(config)])))
        return cls(location, storage, config, key)

    @classmethod
    def read_config(cls, location: Location) -> dict[str, Any]:
        """The repository's settings (format, id, whether it is encrypted); needs no key."""
        return cls._config(location, open_storage(location))

    @classmethod
    def open(cls, location: Location, *, passphrase: str | None = None) -> Repository:
        storage = open_storage(location)
        config = cls._config(location, storage)
        key = None
        if config.get("encrypted"):
            if passphrase is None:
                crypto.sealing(FLAG_ENCRYPTED, None)  # raises WrongPassphrase, saying how to give it
            try:
                key_file = _checked(storage, "key", "key")
            except MissingFile:
                raise MissingFile(
                    f"{storage.describe('key')} is missing: the repository is encrypted and its "
                    "key is gone", hint="Restore the key file from a copy of the repository; "
                    "without it nothing can be read.", path=storage.describe("key")) from None
            key = crypto.open_key_record(key_file.record(0, crypto.sealing(0, None)), passphrase or "")
        return cls(location, storage, config, key)

    @classmethod
    def with_key(cls, location: Location, key: crypto.MasterKey | None) -> Repository:
        """The repository at `location`, opened with a key given (a process of its own)."""
        storage = open_storage(location)
        return cls(location, storage, cls._config(location, storage), key)

    @staticmethod
    def _config(location: Location, storage: Storage) -> dict[str, Any]:
        try:
            checked = _checked(storage, "config", "config")
        except MissingFile:
            raise NotARepository(
                f"no CPS repository at {storage.describe()}",
                hint=f"Create one with: cps repo init {location}") from None
        return codec.decode_json(checked.record(0, crypto.sealing(0, None)), "config")

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

    def describe(self) -> str:
        """Where the repository is, for people: its folder or its URL."""
        return self.storage.describe()

    def requests_folder(self, db_id: str) -> Path:
        """Where recovery points are asked of `db_id`'s running protector (capture/requests.py):
        a local folder, beside the locks."""
        return self._coordination / naming.database_dir(db_id) / "requests"

    def protector_lock(self, db_id: str) -> AbstractContextManager[None]:
        return locks.hold(self._lock_path(f"protect-{naming.check_db_id(db_id)}"), exclusive=True)

    def protector_running(self, db_id: str) -> bool:
        """Whether a protector holds `db_id`'s lock now."""
        return locks.is_held(self._lock_path(f"protect-{naming.check_db_id(db_id)}"))

    def reader_lock(self) -> AbstractContextManager[None]:
        """Held while reading or adding packs (restore, full backups): prune waits for it."""
        return locks.hold(self._lock_path("repository"), exclusive=False, wait=True)

    def prune_lock(self) -> AbstractContextManager[None]:
        """Held while deleting packs: waits for readers and writers of packs to finish."""
        return locks.hold(self._lock_path("repository"), exclusive=True, wait=True)

    def _lock_path(self, name: str) -> Path:
        return self._coordination / "locks" / name

    # Databases and chains

    def add_database(self, info: DatabaseInfo) -> None:
        key = f"{naming.database_dir(info.db_id)}/database"
        if self.storage.size(key) is None:
            self._write(key, "database", [codec.encode_record(info)])

    def databases(self) -> list[DatabaseInfo]:
        return [self.database(name) for name in self._database_names()]

    def _database_names(self) -> list[str]:
        return [entry.name for entry in self.storage.list(naming.DATABASES) if entry.folder]

    def database(self, db_id: str) -> DatabaseInfo:
        """What the repository knows of `db_id`. The file only describes the database: when it
        is missing or damaged but the database's chains are there, an empty description stands
        in for it (no source path, page size 0), so its backups stay restorable."""
        folder = naming.database_dir(db_id)
        key = f"{folder}/database"
        try:
            return codec.decode_record(DatabaseInfo, self._read_json(key, "database"),
                                       self.storage.describe(key))
        except (MissingFile, CorruptFile, UnsupportedFormat):
            if self.storage.list(f"{folder}/chains", recursive=True):
                return DatabaseInfo(db_id, "", 0, 0)
            if self.storage.size(key) is not None:
                raise
        known = self._database_names()
        raise MissingFile(f"the repository holds no database {db_id!r}",
                          hint=f"Databases here: {', '.join(known) or 'none'}.")

    def write_chain(self, db_id: str, chain: Chain) -> None:
        self._write(f"{naming.chain_dir(db_id, chain.chain)}/chain", "chain",
                    [codec.encode_record(chain)])

    def chains(self, db_id: str) -> list[Chain]:
        """The chains whose chain file can be read, in order."""
        return [f.chain for f in self.chain_folders(db_id) if f.chain is not None]

    def chain_folders(self, db_id: str) -> list[ChainFolder]:
        """Every chain folder of the database, in order, each with its chain file when it can be
        read: a chain number is never used twice, whatever became of its files."""
        found = []
        for entry in self.storage.list(f"{naming.database_dir(db_id)}/chains"):
            number = naming.parse_chain_dir(entry.name)
            if number is None or not entry.folder:
                continue
            key = f"{naming.chain_dir(db_id, number)}/chain"
            try:
                chain = codec.decode_record(Chain, self._read_json(key, "chain"),
                                            self.storage.describe(key))
            except MissingFile:
                if self.storage.list(naming.chain_dir(db_id, number), recursive=True):
                    found.append(ChainFolder(number, None, "its chain file is missing"))
                continue  # else a folder emptied by prune, which some stores list a while
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
        return PackWriter(self.storage, self._sealing, lambda _page_id: False)

    def page_id(self, page: bytes) -> bytes:
        return crypto.page_id(page, self.key)

    def page_index(self) -> PageIndex:
        """Where every page lives (the packs' index records): `PageIndex.locate` and `require`
        find many pages at once, `location` one entry's page for `read_page`."""
        return load_page_index(self.storage, self.sealing_for)

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
        where = self.storage.describe(location.pack)
        stored = self._page_reads.get_range(location.pack, location.offset, location.length)
        try:
            page = self.sealing_for(location.flags).open(stored)
        except CorruptFile as exc:
            raise CorruptFile(f"cannot read the page at offset {location.offset} of {where}: "
                              f"{exc}", path=where) from exc
        if self.page_id(page) != page_id:
            raise CorruptFile(f"{where} does not hold the page its index names at offset "
                              f"{location.offset}: the pack is damaged",
                              hint="Run 'cps verify repo' on the repository: it names what the damage costs.",
                              path=where)
        return page

    def write_full(self, db_id: str, full: FullBackup) -> FullRef:
        ref = FullRef(full.chain, full.txn, full.taken_at)
        self._write(self.full_key(db_id, ref), "full", codec.encode_full(full))
        return ref

    def fulls(self, db_id: str, chain: int) -> list[FullRef]:
        names = self.storage.list(f"{naming.chain_dir(db_id, chain)}/fulls")
        refs = (naming.parse_full(chain, entry.name) for entry in names)
        return sorted((r for r in refs if r), key=lambda r: r.txn)

    def read_full(self, db_id: str, ref: FullRef) -> FullBackup:
        return codec.decode_full(self._records(self.full_key(db_id, ref), "full"))

    def full_key(self, db_id: str, ref: FullRef) -> str:
        return f"{naming.chain_dir(db_id, ref.chain)}/fulls/{self.full_name(ref)}"

    @staticmethod
    def full_name(ref: FullRef) -> str:
        """The file name of a full backup, for people."""
        return naming.format_full(ref)

    # Log segments

    def write_segment(self, db_id: str, segment: BuiltSegment) -> SegmentRef:
        self.storage.put(self.segment_key(db_id, segment.ref), segment.file_chunks(self._sealing))
        return segment.ref

    def segments(self, db_id: str, chain: int) -> list[SegmentRef]:
        names = self.storage.list(f"{naming.chain_dir(db_id, chain)}/segments")
        refs = (naming.parse_segment(chain, entry.name) for entry in names)
        return sorted((r for r in refs if r), key=lambda r: r.first_txn)

    def read_segment(self, db_id: str, ref: SegmentRef) -> Segment:
        """The segment `ref` names, checked whole and against its name (chain, transactions and
        their times): planning trusts names, so a file that disagrees with its own is damaged."""
        checked = self._checked(self.segment_key(db_id, ref), "segment")
        segment = codec.decode_segment(checked.records(self._sealing_of(checked)), checked.version)
        first, last = segment.transactions[0], segment.transactions[-1]
        found = SegmentRef(segment.chain, first.txn, last.txn, first.time, last.time)
        if found != ref:
            raise CorruptFile(f"{checked.path} holds transactions {first.txn} to {last.txn} of "
                              f"chain {segment.chain}, which its name does not say: the file is "
                              "damaged or misplaced", path=checked.path)
        return segment

    def read_segments(self, db_id: str, refs: Sequence[SegmentRef]) -> Generator[Segment, None, None]:
        """`read_segment` of each ref, in order, read ahead of the caller by a few threads; the
        error of a segment that cannot be read is raised when its turn comes."""
        return read_ahead(lambda ref: self.read_segment(db_id, ref), refs, "cps-segment-reader",
                          depth=read_depth(self.storage))

    def segment_key(self, db_id: str, ref: SegmentRef) -> str:
        return f"{naming.chain_dir(db_id, ref.chain)}/segments/{naming.format_segment(ref)}"

    # Recovery points and status

    def write_point(self, db_id: str, point: RecoveryPoint) -> None:
        self._write(self.point_key(db_id, point), "point", [codec.encode_record(point)])

    def point_key(self, db_id: str, point: RecoveryPoint) -> str:
        return f"{naming.database_dir(db_id)}/points/{naming.format_point(point.txn, point.name)}"

    def points(self, db_id: str) -> tuple[list[RecoveryPoint], list[UnreadableFile]]:
        """The recovery points, by transaction, and the point files that cannot be read: a
        damaged one loses its name, never a restore (its transaction is in its file name)."""
        folder = f"{naming.database_dir(db_id)}/points"
        found, unreadable = [], []
        for entry in self.storage.list(folder):
            if entry.folder or not entry.name.endswith(".point"):
                continue
            key = f"{folder}/{entry.name}"
            where = self.storage.describe(key)
            try:
                found.append(codec.decode_record(RecoveryPoint, self._read_json(key, "point"),
                                                 where))
            except (CorruptFile, UnsupportedFormat) as exc:
                unreadable.append(UnreadableFile(where, naming.parse_point(entry.name),
                                                 exc.message))
        return sorted(found, key=lambda p: (p.txn, p.created_at)), unreadable

    def write_status(self, db_id: str, status: ProtectorStatus) -> None:
        self._write(f"{naming.database_dir(db_id)}/status", "status",
                    [codec.encode_record(status)])

    def status(self, db_id: str) -> ProtectorStatus | None:
        """The protector's latest report, None when there is none; CorruptFile when damaged."""
        key = f"{naming.database_dir(db_id)}/status"
        try:
            return codec.decode_record(ProtectorStatus, self._read_json(key, "status"),
                                       self.storage.describe(key))
        except MissingFile:
            return None

    # Prune records

    def write_pruned(self, db_id: str, ranges: list[PrunedRange]) -> str:
        """A new prune record listing `ranges` (written before what they name is deleted); its
        key."""
        key = f"{naming.database_dir(db_id)}/pruned/{naming.format_pruned(_now())}"
        self._write(key, "pruned", [codec.encode_pruned(ranges)])
        return key

    def pruned(self, db_id: str) -> tuple[list[tuple[str, list[PrunedRange]]], list[UnreadableFile]]:
        """Every prune record (its key and ranges), and those that cannot be read."""
        folder = f"{naming.database_dir(db_id)}/pruned"
        found, unreadable = [], []
        for entry in self.storage.list(folder):
            if not naming.is_pruned(entry.name):
                continue
            key = f"{folder}/{entry.name}"
            try:
                record = next(self._records(key, "pruned"))
                found.append((key, codec.decode_pruned(record, self.storage.describe(key))))
            except (CorruptFile, UnsupportedFormat, StopIteration) as exc:
                message = exc.message if isinstance(exc, CorruptFile | UnsupportedFormat) else \
                    "it holds no record"
                unreadable.append(UnreadableFile(self.storage.describe(key), None, message))
        return found, unreadable

    # Restore drills

    def write_drill(self, db_id: str, drill: DrillRecord) -> str:
        """A new drill record (`cps drill`); its key."""
        key = f"{naming.drills_dir(db_id)}/{naming.format_drill(drill.started_at)}"
        self._write(key, "drill", [codec.encode_record(drill)])
        return key

    def drills(self, db_id: str) -> tuple[list[tuple[str, DrillRecord]], list[UnreadableFile]]:
        """Every drill record (its key and record), oldest first, and those that cannot be read:
        a drill record is advisory, so a damaged one is left out, never an error."""
        folder = naming.drills_dir(db_id)
        found, unreadable = [], []
        for entry in self.storage.list(folder):
            if not naming.is_drill(entry.name):
                continue
            key = f"{folder}/{entry.name}"
            where = self.storage.describe(key)
            try:
                found.append((key, codec.decode_record(DrillRecord, self._read_json(key, "drill"),
                                                       where)))
            except (CorruptFile, UnsupportedFormat) as exc:
                unreadable.append(UnreadableFile(where, None, exc.message))
        return sorted(found, key=lambda item: (item[1].started_at, item[0])), unreadable

    # Files

    def _write(self, key: str, kind: str, records: Iterable[bytes]) -> None:
        self.storage.put(key, b"".join(encode_file(kind, self._sealing, records)))

    def _records(self, key: str, kind: str) -> Iterator[bytes]:
        checked = self._checked(key, kind)
        return checked.records(self._sealing_of(checked))

    def _checked(self, key: str, kind: str) -> RecordFile:
        return _checked(self.storage, key, kind)

    def _sealing_of(self, checked: RecordFile) -> Sealing:
        try:
            return self.sealing_for(checked.flags)
        except CorruptFile as exc:
            raise CorruptFile(f"{checked.path}: {exc.message}", path=checked.path) from exc

    def _read_json(self, key: str, kind: str) -> dict[str, Any]:
        try:
            return codec.decode_json(next(self._records(key, kind)), self.storage.describe(key))
        except StopIteration:
            where = self.storage.describe(key)
            raise CorruptFile(f"{where} holds no record", path=where) from None


def _checked(storage: Storage, key: str, kind: str) -> RecordFile:
    """The file at `key`, read and checked whole."""
    return parse_file(storage.describe(key), storage.get(key), kind)


def _now() -> int:
    return int(time.time() * 1000)


# Files Object Lock does not retain: the status, replaced every second, and what the repository
# deletes as it goes (prune records merged into newer ones, drill records past the newest few).
_UNRETAINED_KINDS = frozenset({"status", "pruned", "drill"})


def _retained(key: str) -> bool:
    """Whether Object Lock retains the file at `key`: every file that holds backups."""
    return naming.key_kind(key) not in _UNRETAINED_KINDS
