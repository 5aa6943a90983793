"""Every error CPS reports to a user, with a stable code and a hint.

The hierarchy::

    CPSError                       code          exit
    ├── UsageError                 usage         2   a request that cannot be carried out as asked
    │   └── ConfigError            config        9   the configuration file is wrong (key and line)
    ├── FileSystemError            filesystem    40  a file or folder could not be read or written
    ├── StoreError                 store         3   the mail store refused or failed an operation
    │   ├── NotAStore              not-a-store   3   the file is not a CPS mail database
    │   ├── StoreBusy              store-busy    4   another process held the database too long
    │   ├── NotFound               not-found     5   a mailbox, folder or message does not exist
    │   ├── AlreadyExists          exists        6   a mailbox or folder of that name exists
    │   ├── InvalidName            invalid-name  7   a folder name or address that cannot be stored
    │   ├── InvalidMessage         invalid-mail  8   a message that cannot be accepted (empty)
    │   └── StoreDamaged           damaged-store 60  verification found damage in a mail database
    ├── RepositoryError            repository    10  the backup repository refused or failed
    │   ├── NotARepository         not-a-repo    10  the folder is not a CPS repository
    │   ├── UnsupportedFormat      format        11  a file of a format this CPS cannot read
    │   ├── WrongPassphrase        passphrase    12  missing or wrong passphrase
    │   ├── RepositoryLocked       locked        13  another process holds the lock needed
    │   ├── CorruptFile            corrupt       14  a file fails its checksum or cannot be parsed
    │   ├── MissingFile            missing       15  a file the repository's records need is absent
    │   ├── StorageUnavailable     storage       16  the storage cannot be reached or refused
    │   └── FileRetained           retained      17  Object Lock keeps a file from being deleted yet
    ├── CaptureError               capture       20  a database cannot be protected as asked
    │   └── NotInWalMode           not-wal       21  the database is not in WAL mode
    ├── RestoreError               restore       30  a restore cannot be carried out as asked
    │   ├── TargetNotCovered       not-covered   31  the repository does not cover the target
    │   ├── TargetDamaged          damaged       32  the files the target needs are missing or damaged,
    │   │                                            or `cps verify repo` found damage
    │   └── StandbyError           standby       33  a standby copy cannot be replayed or promoted as asked
    └── ServerError                server        50  the CPS server cannot be reached or failed
        └── AccessDenied           access        51  the server refused the token or its role

`CPSError` is what a user is shown: a lowercase message without a trailing period, plus an optional
hint written as full sentences. Anything else that escapes is a bug and is shown as one. The codes and
exit statuses are a contract: scripts depend on them, and `docs/errors.md` lists them.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path


class CPSError(Exception):
    """An error to show the user; `code` and `exit_status` never change for a given subclass."""

    code = "error"
    exit_status = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class UsageError(CPSError):
    code = "usage"
    exit_status = 2


WRITES_ARE_WHOLE = "CPS writes each file whole or not at all, so nothing was left half written."


class FileSystemError(CPSError):
    """A file or folder that could not be read or written (an `OSError`, explained)."""

    code = "filesystem"
    exit_status = 40

    @classmethod
    def from_os_error(cls, error: OSError, *, kept: str = WRITES_ARE_WHOLE) -> FileSystemError:
        """What `error` means for its path, what to do, and `kept`: what the failure left."""
        path = _path_of(error.filename)
        message, advice = _explain(error.errno, path, error.strerror or str(error))
        return cls(message, hint=f"{advice} {kept}")


class ConfigError(UsageError):
    code = "config"
    exit_status = 9


class StoreError(CPSError):
    code = "store"
    exit_status = 3


class NotAStore(StoreError):
    code = "not-a-store"
    exit_status = 3


class StoreBusy(StoreError):
    code = "store-busy"
    exit_status = 4


class NotFound(StoreError):
    code = "not-found"
    exit_status = 5


class AlreadyExists(StoreError):
    code = "exists"
    exit_status = 6


class InvalidName(StoreError):
    code = "invalid-name"
    exit_status = 7


class InvalidMessage(StoreError):
    code = "invalid-mail"
    exit_status = 8


class StoreDamaged(StoreError):
    """`cps verify store` found damage (or `--repair` left some): the findings say what and where."""

    code = "damaged-store"
    exit_status = 60


class RepositoryError(CPSError):
    code = "repository"
    exit_status = 10

    def __init__(self, message: str, *, hint: str | None = None, path: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.path = path


class NotARepository(RepositoryError):
    code = "not-a-repo"
    exit_status = 10


class UnsupportedFormat(RepositoryError):
    code = "format"
    exit_status = 11


class WrongPassphrase(RepositoryError):
    code = "passphrase"
    exit_status = 12


class RepositoryLocked(RepositoryError):
    code = "locked"
    exit_status = 13


class CorruptFile(RepositoryError):
    code = "corrupt"
    exit_status = 14


class MissingFile(RepositoryError):
    code = "missing"
    exit_status = 15


class StorageUnavailable(RepositoryError, OSError):
    """The repository's storage (a bucket) cannot be reached, or refused a request. An OSError
    too: capture rides it out as it rides out a full disk (capture/outage.py)."""

    code = "storage"
    exit_status = 16


class FileRetained(RepositoryError):
    """A file of a repository under S3 Object Lock whose retention has not ended: prune keeps it
    and says so."""

    code = "retained"
    exit_status = 17


class CaptureError(CPSError):
    code = "capture"
    exit_status = 20


class NotInWalMode(CaptureError):
    code = "not-wal"
    exit_status = 21


class RestoreError(CPSError):
    code = "restore"
    exit_status = 30


class TargetNotCovered(RestoreError):
    code = "not-covered"
    exit_status = 31


class TargetDamaged(RestoreError):
    """Files a restore needs are missing or damaged; also what `cps verify repo` raises when it
    finds damage: the same condition, found before a restore needs the files."""

    code = "damaged"
    exit_status = 32


class StandbyError(RestoreError):
    code = "standby"
    exit_status = 33


class ServerError(CPSError):
    code = "server"
    exit_status = 50


class AccessDenied(ServerError):
    code = "access"
    exit_status = 51


ALL_ERRORS: tuple[type[CPSError], ...] = (
    CPSError,
    UsageError,
    ConfigError,
    FileSystemError,
    StoreError,
    NotAStore,
    StoreBusy,
    NotFound,
    AlreadyExists,
    InvalidName,
    InvalidMessage,
    StoreDamaged,
    RepositoryError,
    NotARepository,
    UnsupportedFormat,
    WrongPassphrase,
    RepositoryLocked,
    CorruptFile,
    MissingFile,
    StorageUnavailable,
    FileRetained,
    CaptureError,
    NotInWalMode,
    RestoreError,
    TargetNotCovered,
    TargetDamaged,
    StandbyError,
    ServerError,
    AccessDenied,
)
# The error a code names, for errors that crossed a process or the network as their code.
ERRORS_BY_CODE: dict[str, type[CPSError]] = {error.code: error for error in ALL_ERRORS}


def _path_of(filename: object) -> str | None:
    if isinstance(filename, str | bytes):
        return os.fsdecode(filename)
    return None


def _explain(number: int | None, path: str | None, reason: str) -> tuple[str, str]:
    """A message naming `path` and the advice for the error `number`."""
    if path is None:
        return reason.lower(), "Check the disk and the paths given, then run the command again."
    if number == errno.ENOENT:
        folder = Path(path).parent
        if not folder.is_dir():
            return (f"folder {folder} does not exist",
                    "Create it first, or give a path in a folder that exists.")
        return f"{path} does not exist", "Check the path."
    if number == errno.ENOTDIR:
        return (f"{_file_in_the_way(Path(path))} is a file, not a folder",
                "Give a path whose folders are all folders.")
    explained = _EXPLAINED.get(number or 0)
    if explained is None:
        return f"{reason.lower()}: {path}", "Check the path and its disk, then run the command again."
    message, advice = explained
    return message.format(path=path), advice


def _file_in_the_way(path: Path) -> Path:
    """The first part of `path` that exists and is not a folder (or `path`, when none is)."""
    for part in reversed([path, *path.parents]):
        if part.exists() and not part.is_dir():
            return part
    return path


_PERMISSION = ("permission denied: {path}",
               "Run the command as a user allowed to use that path, or change its permissions.")
_EXPLAINED = {
    errno.EISDIR: ("{path} is a folder, not a file", "Give the path of a file."),
    errno.EACCES: _PERMISSION,
    errno.EPERM: _PERMISSION,
    errno.EROFS: ("{path} is on a read-only file system", "Give a path on a writable file system."),
    errno.ENOSPC: ("no space left on the device of {path}",
                   "Free space on that disk, or give a path on another one."),
    errno.EDQUOT: ("disk quota exceeded writing {path}",
                   "Free space within the quota, or give a path on another disk."),
    errno.EEXIST: ("{path} already exists", "Give a new path, or move that one away."),
    errno.ENAMETOOLONG: ("file name too long: {path}", "Give a shorter path."),
}
