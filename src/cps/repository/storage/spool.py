"""The upload spool: a repository in a bucket written through a bounded local folder first, so that
capture never waits on the network.

`SpooledStorage` is the storage of every repository in a bucket (location.py). Its spool is a
folder of the repository's local state folder (`coordination_folder(...)/spool`), shared by every
process of the host that uses the repository:

- A spooling put (`spooling`, set by the protector and its full-backup child) makes the file
  durable in the spool (durable.write_temp, then a sequence number under the spool's lock, then
  durable.publish) and returns: the file is `<seq>-<size>-<key, '/' as '+'>`. Sequence numbers
  follow the order puts returned in, across processes, so the spool holds the repository's write
  order (docs/repository-format.md, Write and read ordering). A put of a key already queued
  replaces the queued file (only `status` and recovery points are ever put again). A spooling
  delete is queued the same way, as `<seq>-d-<key>`, so that no upload queued before it brings
  the file back.
- The spool holds at most `limit` bytes. A put that would pass it raises StorageUnavailable at
  once (the protector then rides it out as any outage: capture/outage.py), or, with `patience`
  (a full backup's child), waits while uploads free room, and raises once they have freed none
  for that long.
- One `Uploader` per host (whoever holds the spool's uploader lock: a protector) sends the queued
  files to the bucket strictly in sequence order, one at a time, retrying with exponential backoff,
  and deletes each from the spool once the bucket has it whole. A crash between the two uploads
  the file again, which changes nothing: a file's bytes never change under its key except for
  `status` and points, whose newer version comes later in the sequence.
- Reads merge the spool with the bucket, the spool listed first: a file leaves the spool only once
  the bucket has it, so a reader sees it in one or the other, whatever the uploader does meanwhile.
  Processes on the protector's host therefore see everything captured; those on other hosts see
  what is in the bucket, which is always a consistent repository.
- A put that does not spool (any other command: a prune record, `recovery-point keep`) replaces any
  queued file of its key and goes to the bucket, after uploading what the spool holds when no
  uploader is at work, so that it never overtakes files queued before it.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ...durable import make_folders, publish, write_temp
from ...errors import CPSError, FileRetained, MissingFile, StorageUnavailable
from .base import Data, Entry, Storage, check_folder, check_key

logger = logging.getLogger(__name__)

SPOOL_BYTES = 1 << 30
RESCAN_SECONDS = 0.05  # how often the uploader looks for files another process spooled
BACKOFF_FIRST_SECONDS = 0.1
BACKOFF_MAX_SECONDS = 5.0
ROOM_PATIENCE_SECONDS = 60.0  # a full backup's child waits this long for uploads to free room
_SEQUENCE_LOCK = ".sequence.lock"
_UPLOADER_LOCK = ".uploader.lock"


@dataclass(frozen=True, slots=True)
class Spooled:
    """One file waiting in the spool, or a deletion of its key waiting its turn."""

    seq: int
    size: int
    key: str
    path: Path
    deletion: bool = False

    @property
    def spooled_at(self) -> float | None:
        """When it was spooled (time.time()); None once it has left the spool."""
        try:
            return self.path.stat().st_mtime
        except FileNotFoundError:
            return None


class Spool:
    """The spool folder: its files in sequence order, and the lock that numbers them."""

    def __init__(self, folder: Path, limit: int = SPOOL_BYTES) -> None:
        self.folder = folder
        self.limit = limit

    def files(self) -> list[Spooled]:
        try:
            names = os.listdir(self.folder)
        except FileNotFoundError:
            return []
        found = (_parse(self.folder, name) for name in names)
        return sorted((s for s in found if s is not None), key=lambda s: s.seq)

    def latest(self, key: str) -> Spooled | None:
        """The newest queued file of `key`."""
        found = [s for s in self.files() if s.key == key]
        return found[-1] if found else None

    def add(self, key: str, data: Data, patience: float, *, deletion: bool = False) -> None:
        """Queue `data` to be put under `key` (or, with `deletion`, `key` to be deleted), after
        everything queued before, in place of what was queued of `key`."""
        make_folders(self.folder)
        temp = write_temp(self.folder, key.replace("/", "+"), data)
        try:
            size = temp.stat().st_size
            self._wait_for_room(key, size, patience)
            with self.locked(_SEQUENCE_LOCK):
                queued = self.files()
                seq = queued[-1].seq + 1 if queued else 1
                publish(temp, self.folder / _name(seq, None if deletion else size, key))
                for older in queued:
                    if older.key == key:
                        older.path.unlink(missing_ok=True)
        finally:
            temp.unlink(missing_ok=True)

    def drop(self, key: str) -> None:
        """Forget the queued files of `key` (a newer version goes to the bucket directly)."""
        with self.locked(_SEQUENCE_LOCK):
            for spooled in self.files():
                if spooled.key == key:
                    spooled.path.unlink(missing_ok=True)

    def _wait_for_room(self, key: str, size: int, patience: float) -> None:
        if size > self.limit:
            raise self._full(key, size, "the file alone is larger than the spool")
        waiting = self._waiting_bytes()
        since = time.monotonic()
        while waiting + size > self.limit:
            if time.monotonic() - since >= patience:
                raise self._full(key, size, f"{waiting >> 20} MiB wait for the bucket")
            time.sleep(RESCAN_SECONDS)
            now_waiting = self._waiting_bytes()
            if now_waiting < waiting:
                since = time.monotonic()  # uploads are freeing room: patience starts again
            waiting = now_waiting

    def _waiting_bytes(self) -> int:
        return sum(s.size for s in self.files())

    def _full(self, key: str, size: int, why: str) -> StorageUnavailable:
        return StorageUnavailable(
            f"the upload spool {self.folder} is full: {key} ({size} bytes) does not fit in its "
            f"limit of {self.limit >> 20} MiB ({why})",
            hint="The bucket is not taking uploads fast enough, or not at all: check the "
                 "endpoint and the network. Capture keeps what it captured and holds the WAL up "
                 "to --wal-limit; a larger --spool-limit rides out longer outages.",
            path=str(self.folder))

    @contextmanager
    def locked(self, name: str, *, wait: bool = True) -> Iterator[bool]:
        """Hold the spool's lock `name`; yields False (holding nothing) when `wait` is False and
        another process holds it."""
        make_folders(self.folder)
        fd = os.open(self.folder / name, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            yield True
        finally:
            os.close(fd)


class SpooledStorage:
    """A bucket's storage with the spool in front (see the module docstring)."""

    remote = True

    def __init__(self, bucket: Storage, spool: Spool) -> None:
        self.bucket = bucket
        self.spool = spool
        self.spooling = False
        self.patience = 0.0  # seconds a spooling put waits for room (Spool.add)
        self.on_spooled: Callable[[], None] = lambda: None

    def describe(self, key: str = "") -> str:
        return self.bucket.describe(key)

    def put(self, key: str, data: Data) -> None:
        check_key(key)
        if self.spooling:
            self.spool.add(key, data, self.patience)
            self.on_spooled()
            return
        queued = self.spool.files()
        if any(spooled.key == key for spooled in queued):
            self.spool.drop(key)
        if queued:
            upload_unless_uploading(self.bucket, self.spool)
        self.bucket.put(key, data)

    def get(self, key: str) -> bytes:
        spooled = self._latest(key)
        if spooled is not None:
            try:
                return spooled.path.read_bytes()
            except FileNotFoundError:
                pass  # uploaded meanwhile: the bucket has it
        return self.bucket.get(key)

    def get_range(self, key: str, offset: int, length: int) -> bytes:
        spooled = self._latest(key)
        if spooled is not None:
            try:
                with spooled.path.open("rb") as handle:
                    return os.pread(handle.fileno(), max(length, 0), offset)
            except FileNotFoundError:
                pass
        return self.bucket.get_range(key, offset, length)

    def size(self, key: str) -> int | None:
        try:
            spooled = self._latest(key)
        except MissingFile:
            return None
        return spooled.size if spooled is not None else self.bucket.size(key)

    def _latest(self, key: str) -> Spooled | None:
        """The newest queued file of `key`; MissingFile when its deletion is queued."""
        spooled = self.spool.latest(check_key(key))
        if spooled is not None and spooled.deletion:
            where = self.describe(key)
            raise MissingFile(f"{where} is missing", path=where)
        return spooled

    def list(self, folder: str, *, recursive: bool = False) -> list[Entry]:
        prefix = f"{check_folder(folder)}/" if folder else ""
        queued = self.spool.files()  # before the bucket: see the module docstring
        found = {entry.name: entry for entry in self.bucket.list(folder, recursive=recursive)}
        for spooled in queued:
            if not spooled.key.startswith(prefix):
                continue
            name = spooled.key[len(prefix):]
            if spooled.deletion:
                found.pop(name, None)
            elif recursive or "/" not in name:
                found[name] = Entry(name, spooled.size)
            else:
                top = name.split("/", 1)[0]
                found.setdefault(top, Entry(top, 0, folder=True))
        return sorted(found.values(), key=lambda e: e.name)

    def delete(self, key: str) -> None:
        if self.spooling:  # in its turn, so that no upload queued before it brings the file back
            self.spool.add(check_key(key), b"", self.patience, deletion=True)
            self.on_spooled()
            return
        self.spool.drop(check_key(key))
        if self.spool.files():
            upload_unless_uploading(self.bucket, self.spool)
        self.bucket.delete(key)


@dataclass(frozen=True, slots=True)
class UploadState:
    """How far uploads have got, for the protector's status."""

    waiting: list[Spooled]  # in upload order
    error: str | None  # why the last attempt failed, while uploads fail
    failing_since: float | None  # time.time()

    @property
    def waiting_bytes(self) -> int:
        return sum(s.size for s in self.waiting)

    def lag(self) -> float | None:
        """Seconds the oldest waiting file has waited; None when nothing waits."""
        for spooled in self.waiting:
            spooled_at = spooled.spooled_at
            if spooled_at is not None:
                return max(0.0, time.time() - spooled_at)
        return None


class Uploader:
    """The thread that empties the spool into the bucket, in order (see the module docstring)."""

    def __init__(self, bucket: Storage, spool: Spool) -> None:
        self.bucket = bucket
        self.spool = spool
        self._error: str | None = None
        self._failing_since: float | None = None
        self._failures = 0  # attempts that failed, ever
        # Whether this uploader holds the spool's uploader lock (None: not known yet).
        self._uploading: bool | None = None
        self._closing = False
        self._wake = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="cps-uploader", daemon=True)
        self._thread.start()

    def notify(self) -> None:
        """Something was spooled: look now rather than at the next rescan."""
        with self._wake:
            self._wake.notify_all()

    def state(self) -> UploadState:
        with self._wake:
            error, since = self._error, self._failing_since
        return UploadState(self.spool.files(), error, since)

    def wait_idle(self) -> None:
        """Wait until nothing waits in the spool, or an upload fails (at once when another
        process's uploader is at work)."""
        with self._wake:
            failed_before = self._failures
            self._wake.notify_all()
            while (self._uploading is not False and self._thread.is_alive()
                   and self.spool.files() and self._failures == failed_before):
                self._wake.wait(RESCAN_SECONDS)

    def close(self) -> None:
        """Upload what waits while the bucket takes it, then stop: at the first failure, what is
        left stays spooled for the next protector (or the next command writing to the bucket)."""
        with self._wake:
            self._closing = True
            self._wake.notify_all()
        self._thread.join()
        left = self.spool.files()
        if left:
            logger.error("%d files (%d MiB) of %s are not uploaded yet (%s): they stay in %s and "
                         "are uploaded when the repository is next written from this host",
                         len(left), sum(s.size for s in left) >> 20, self.bucket.describe(),
                         self._error, self.spool.folder)

    def _run(self) -> None:
        while True:
            with self.spool.locked(_UPLOADER_LOCK, wait=False) as held:
                if held:
                    try:
                        self._uploading = True
                        self._upload_until_closed()
                    finally:
                        with self._wake:
                            self._uploading = False
                            self._wake.notify_all()
                    return
            # Another process uploads (a protector of another database); take over when it stops.
            with self._wake:
                self._uploading = False
            if self._pause(RESCAN_SECONDS):
                return

    def _upload_until_closed(self) -> None:
        backoff = BACKOFF_FIRST_SECONDS
        while True:
            with self._wake:
                closing = self._closing
            # Listed after `closing` was read: once closing, every put of this process is listed.
            queued = self.spool.files()
            if not queued:
                if closing:
                    return
                self._pause(RESCAN_SECONDS)
                continue
            error = _upload(self.bucket, queued[0])
            with self._wake:
                self._wake.notify_all()
                if error is None:
                    self._error = self._failing_since = None
                    backoff = BACKOFF_FIRST_SECONDS
                    continue
                if self._failing_since is None:
                    self._failing_since = time.time()
                    logger.error("cannot upload to %s (%s): the spool keeps the files and "
                                 "uploads them when it can", self.bucket.describe(), error)
                self._error = error
                self._failures += 1
                if self._closing:
                    return
            if self._pause(backoff):
                return
            backoff = min(backoff * 2, BACKOFF_MAX_SECONDS)

    def _pause(self, seconds: float) -> bool:
        """Wait `seconds`, or until something is spooled; whether to stop (closing)."""
        with self._wake:
            if not self._closing:
                self._wake.wait(seconds)
            return self._closing


def upload_unless_uploading(bucket: Storage, spool: Spool) -> None:
    """Upload every queued file now, unless an uploader is at work; StorageUnavailable when one
    cannot be uploaded."""
    with spool.locked(_UPLOADER_LOCK, wait=False) as held:
        if not held:
            return
        for spooled in spool.files():
            error = _upload(bucket, spooled)
            if error is not None:
                raise StorageUnavailable(f"cannot upload {spooled.key} from the spool "
                                         f"{spool.folder}: {error}", path=str(spooled.path))


def _upload(bucket: Storage, spooled: Spooled) -> str | None:
    """Put one spooled file in the bucket and remove it from the spool: None, or why it failed."""
    try:
        if spooled.deletion:
            bucket.delete(spooled.key)
        else:
            with spooled.path.open("rb") as handle:
                bucket.put(spooled.key, iter(lambda: handle.read(1 << 20), b""))
    except FileNotFoundError:
        return None  # replaced by a newer put of its key meanwhile
    except FileRetained as retained:
        # Object Lock keeps the file until its retention ends: the deletion waits for a later
        # prune rather than hold up every upload queued behind it.
        logger.warning("%s", retained.message)
    except (OSError, CPSError) as exc:
        return exc.message if isinstance(exc, CPSError) else str(exc)
    spooled.path.unlink(missing_ok=True)
    return None


@contextmanager
def spooled_uploads(storage: Storage, limit: int) -> Iterator[Uploader | None]:
    """For the protector: this process's puts spooled, and uploaded by a thread of its own while
    it runs; None for a repository that is not in a bucket."""
    if not isinstance(storage, SpooledStorage):
        yield None
        return
    storage.spool.limit = limit
    uploader = Uploader(storage.bucket, storage.spool)
    storage.spooling, storage.on_spooled = True, uploader.notify
    try:
        yield uploader
    finally:
        storage.spooling, storage.on_spooled = False, lambda: None
        uploader.close()


def spooling_limit(storage: Storage) -> int | None:
    """The spool's limit when `storage` spools its puts (a protector's), else None."""
    return storage.spool.limit if isinstance(storage, SpooledStorage) and storage.spooling \
        else None


def spool_puts(storage: Storage, limit: int) -> None:
    """For a full backup's child: its puts spooled, for the protector's uploader, waiting up to
    ROOM_PATIENCE_SECONDS for room while uploads free none (a full backup may be larger than the
    spool)."""
    if isinstance(storage, SpooledStorage):
        storage.spool.limit = limit
        storage.patience = ROOM_PATIENCE_SECONDS
        storage.spooling = True


def _name(seq: int, size: int | None, key: str) -> str:
    """`<seq>-<size>-<key>`, or `<seq>-d-<key>` for a deletion."""
    return f"{seq:016d}-{'d' if size is None else size}-{key.replace('/', '+')}"


def _parse(folder: Path, name: str) -> Spooled | None:
    """The spooled file `name`; None for anything else (temp files, locks)."""
    seq, _, rest = name.partition("-")
    size, _, key = rest.partition("-")
    if not (seq.isdigit() and (size.isdigit() or size == "d") and key):
        return None
    deletion = size == "d"
    return Spooled(int(seq), 0 if deletion else int(size), key.replace("+", "/"), folder / name,
                   deletion)

