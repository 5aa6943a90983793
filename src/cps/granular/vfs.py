"""A read-only SQLite virtual file system whose files are images served by Python objects.

Python's `sqlite3` module runs on a SQLite library (on Debian the system's libsqlite3.so.0). This
module registers one VFS, `VFS_NAME`, in that same library through ctypes, so that an ordinary
`sqlite3` connection to `file:/cps-point/N?vfs=cps-point&immutable=1&mode=ro` reads its pages from
an `Image` (anything with a size in bytes and `read(offset, amount)`), and every query and every
API built on a connection works unchanged on it.

The library is found as the extension module `_sqlite3` sees it (its own symbols first, then the
libraries it links), so the VFS lands in whichever SQLite `sqlite3` really uses; a Python whose
SQLite is linked in without exported symbols gets a clear error instead of a VFS nobody sees.

What this VFS is allowed to do is deliberately little:

- it opens only the main database file of a served image, read-only: a connection asking to
  write is told the file is read-only, and `xWrite` and `xTruncate` refuse (`SQLITE_READONLY`);
- it reports the file as immutable (no locks, no journal, no WAL or shared memory are looked for);
- temporary files SQLite needs for large sorts are opened by the default VFS, unchanged;
- an exception raised while serving a read never crosses into C (ctypes would print it and return
  0, which SQLite takes for success): it is kept on the `ServedImage` as `failure` and SQLite gets
  `SQLITE_IOERR_READ`, which the caller turns back into that exception.
"""

from __future__ import annotations

import atexit
import ctypes
import functools
import importlib.util
import itertools
import sqlite3
import threading
import weakref
from collections.abc import Callable
from typing import Any, Protocol

from ..errors import CPSError

VFS_NAME = "cps-point"
_PREFIX = "/cps-point/"

SQLITE_OK = 0
SQLITE_ERROR = 1
SQLITE_READONLY = 8
SQLITE_NOTFOUND = 12
SQLITE_CANTOPEN = 14
SQLITE_IOERR_READ = 10 | (1 << 8)
SQLITE_IOERR_SHORT_READ = 10 | (2 << 8)
SQLITE_IOERR_DELETE_NOENT = 10 | (23 << 8)
SQLITE_OPEN_READONLY = 0x1
SQLITE_OPEN_READWRITE = 0x2
SQLITE_OPEN_CREATE = 0x4
SQLITE_OPEN_MAIN_DB = 0x100
SQLITE_IOCAP_IMMUTABLE = 0x2000
_SECTOR_SIZE = 4096
_MAX_PATHNAME = 512


class Image(Protocol):
    """A database file's bytes, read-only."""

    @property
    def size(self) -> int: ...

    def read(self, offset: int, amount: int) -> bytes:
        """Up to `amount` bytes at `offset`: fewer only at the end of the file."""


class ServedImage:
    """An image reachable by SQLite under `uri` until `close`. `failure` is the last exception a
    read of it raised (SQLite itself only reports a disk I/O error)."""

    def __init__(self, image: Image, number: int) -> None:
        self.image = image
        self.number = number
        self.uri = f"file:{_PREFIX}{number}?vfs={VFS_NAME}&immutable=1&mode=ro"
        self.failure: BaseException | None = None

    def connect(self) -> sqlite3.Connection:
        """A read-only connection to the image, usable from any thread (one at a time), with no
        implicit transactions, as `MailDatabase` expects."""
        try:
            connection = sqlite3.connect(self.uri, uri=True, isolation_level=None,
                                         check_same_thread=False, factory=_Connection)
        except sqlite3.OperationalError as exc:
            if self.failure is not None:  # reading the file's header failed
                raise self.failure from exc
            raise CPSError(f"SQLite cannot open the point: {exc}",
                           hint=_LIBRARY_HINT if "no such vfs" in str(exc) else None) from exc
        _connections.add(connection)
        return connection

    def close(self) -> None:
        _served.pop(self.number, None)


def serve(image: Image) -> ServedImage:
    """Make `image` readable by SQLite; registers the VFS on first use."""
    _vfs()
    served = ServedImage(image, next(_numbers))
    _served[served.number] = served
    return served


_served: dict[int, ServedImage] = {}
_numbers = itertools.count(1)
_registering = threading.Lock()
_LIBRARY_HINT = ("Use a Python whose sqlite3 module links the system's libsqlite3 (Debian's python3 "
                 "does): points are read through a file system registered in that library.")


class _Connection(sqlite3.Connection):
    """A connection that can be weakly referenced (the base class cannot)."""


# Connections still open when the interpreter exits are closed while this module still exists: a
# connection finalized later would call callbacks that are gone (a crash, not an error).
_connections: weakref.WeakSet[_Connection] = weakref.WeakSet()


@atexit.register
def _close_connections() -> None:
    for connection in list(_connections):
        connection.close()


# The C side: the structures of sqlite3.h, as ctypes sees them.


class _File(ctypes.Structure):
    """sqlite3_file followed by what this VFS keeps per open file: the served image's number."""

    _fields_ = [("methods", ctypes.c_void_p), ("number", ctypes.c_int64)]


_IO_METHODS = ("xClose", "xRead", "xWrite", "xTruncate", "xSync", "xFileSize", "xLock", "xUnlock",
               "xCheckReservedLock", "xFileControl", "xSectorSize", "xDeviceCharacteristics")
_VFS_METHODS = ("xOpen", "xDelete", "xAccess", "xFullPathname", "xDlOpen", "xDlError", "xDlSym",
                "xDlClose", "xRandomness", "xSleep", "xCurrentTime", "xGetLastError",
                "xCurrentTimeInt64")
# Taken over from the default VFS as they are: they concern the machine, not files.
_BORROWED = _VFS_METHODS[4:]


class _IoMethodsStruct(ctypes.Structure):
    _fields_ = [("iVersion", ctypes.c_int), *((name, ctypes.c_void_p) for name in _IO_METHODS)]


class _VfsStruct(ctypes.Structure):
    _fields_ = [("iVersion", ctypes.c_int), ("szOsFile", ctypes.c_int),
                ("mxPathname", ctypes.c_int), ("pNext", ctypes.c_void_p),
                ("zName", ctypes.c_char_p), ("pAppData", ctypes.c_void_p),
                *((name, ctypes.c_void_p) for name in _VFS_METHODS)]


_c_int_p = ctypes.POINTER(ctypes.c_int)
_OPEN = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p,
                         ctypes.c_int, _c_int_p)
_PROTOTYPES: dict[str, Any] = {
    "xOpen": _OPEN,
    "xDelete": ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int),
    "xAccess": ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int,
                                _c_int_p),
    "xFullPathname": ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int,
                                      ctypes.c_void_p),
    "xClose": ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p),
    "xRead": ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int,
                              ctypes.c_int64),
    "xWrite": ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int,
                               ctypes.c_int64),
    "xTruncate": ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_int64),
    "xSync": ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_int),
    "xFileSize": ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.POINTER(ctypes.c_int64)),
    "xLock": ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_int),
    "xUnlock": ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_int),
    "xCheckReservedLock": ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, _c_int_p),
    "xFileControl": ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p),
    "xSectorSize": ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p),
    "xDeviceCharacteristics": ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p),
}


def _guarded(failed: int, *, keeps_failure: bool = False) -> Callable[[Callable[..., int]],
                                                                       Callable[..., int]]:
    """Return `failed` to SQLite instead of letting an exception reach ctypes. With
    `keeps_failure` (callbacks of a served file), the exception is kept on the served image."""
    def decorate(function: Callable[..., int]) -> Callable[..., int]:
        @functools.wraps(function)
        def run(*args: Any) -> int:
            try:
                return function(*args)
            except BaseException as exc:  # nothing may unwind through C
                served = _served.get(_File.from_address(args[0]).number) if keeps_failure else None
                if served is not None:
                    served.failure = exc
                return failed
        return run
    return decorate


def _served_by(file: int) -> ServedImage:
    return _served[_File.from_address(file).number]


# File callbacks. The file pointer is SQLite's sqlite3_file, laid out as _File.


@_guarded(SQLITE_IOERR_READ, keeps_failure=True)
def _read(file: int, buffer: int, amount: int, offset: int) -> int:
    data = _served_by(file).image.read(offset, amount)
    ctypes.memmove(buffer, data, len(data))
    if len(data) < amount:  # past the end: SQLite wants the rest zeroed, and to be told
        ctypes.memset(buffer + len(data), 0, amount - len(data))
        return SQLITE_IOERR_SHORT_READ
    return SQLITE_OK


@_guarded(SQLITE_ERROR, keeps_failure=True)
def _file_size(file: int, size: Any) -> int:
    size[0] = _served_by(file).image.size
    return SQLITE_OK


def _refuse_write(_file: int, *_args: Any) -> int:
    return SQLITE_READONLY


def _nothing_to_do(_file: int, *_args: Any) -> int:
    return SQLITE_OK


def _never_reserved(_file: int, reserved: Any) -> int:
    reserved[0] = 0
    return SQLITE_OK


def _no_file_controls(_file: int, _op: int, _arg: int) -> int:
    return SQLITE_NOTFOUND


def _sector_size(_file: int) -> int:
    return _SECTOR_SIZE


def _immutable(_file: int) -> int:
    return SQLITE_IOCAP_IMMUTABLE


_IO_IMPLEMENTATION: dict[str, Callable[..., int]] = {
    "xClose": _nothing_to_do, "xRead": _read, "xWrite": _refuse_write, "xTruncate": _refuse_write,
    "xSync": _nothing_to_do, "xFileSize": _file_size, "xLock": _nothing_to_do,
    "xUnlock": _nothing_to_do, "xCheckReservedLock": _never_reserved,
    "xFileControl": _no_file_controls, "xSectorSize": _sector_size,
    "xDeviceCharacteristics": _immutable,
}


# VFS callbacks.


class _Registered:
    """What must stay alive, and where, for as long as the process runs: SQLite keeps pointers to
    the structures and to the callbacks."""

    def __init__(self, library: ctypes.CDLL) -> None:
        find = library.sqlite3_vfs_find
        find.restype = ctypes.POINTER(_VfsStruct)
        find.argtypes = [ctypes.c_char_p]
        default = find(None)
        if not default:
            raise CPSError("SQLite has no default file system to build on")
        version = min(2, default.contents.iVersion)  # what it has of what this VFS borrows
        self.default_pointer = ctypes.cast(default, ctypes.c_void_p).value
        self.default_open = _OPEN(default.contents.xOpen)
        self.callbacks = {name: _PROTOTYPES[name](function)
                          for name, function in _IO_IMPLEMENTATION.items()}
        self.methods = _IoMethodsStruct(1, *(ctypes.cast(self.callbacks[name], ctypes.c_void_p)
                                             for name in _IO_METHODS))
        own = {"xOpen": _open, "xDelete": _delete, "xAccess": _access,
               "xFullPathname": _full_pathname}
        self.callbacks |= {name: _PROTOTYPES[name](function) for name, function in own.items()}
        borrowed = _BORROWED if version >= 2 else _BORROWED[:-1]  # xCurrentTimeInt64 is version 2
        self.vfs = _VfsStruct(
            iVersion=version, szOsFile=max(ctypes.sizeof(_File), default.contents.szOsFile),
            mxPathname=_MAX_PATHNAME, zName=VFS_NAME.encode(),
            **{name: ctypes.cast(self.callbacks[name], ctypes.c_void_p) for name in own},
            **{name: getattr(default.contents, name) for name in borrowed})
        register = library.sqlite3_vfs_register
        register.argtypes = [ctypes.POINTER(_VfsStruct), ctypes.c_int]
        if register(ctypes.byref(self.vfs), 0) != SQLITE_OK:
            raise CPSError(f"SQLite refused to register the {VFS_NAME} file system")


_registered: _Registered | None = None


def _vfs() -> _Registered:
    global _registered
    with _registering:
        if _registered is None:
            _registered = _Registered(_sqlite_library())
        return _registered


def _sqlite_library() -> ctypes.CDLL:
    spec = importlib.util.find_spec("_sqlite3")
    if spec is None or spec.origin is None:
        raise CPSError("Python's sqlite3 module is missing its _sqlite3 extension")
    library = ctypes.CDLL(spec.origin)
    if not hasattr(library, "sqlite3_vfs_register"):
        raise CPSError("Python's sqlite3 module does not expose its SQLite library",
                       hint=_LIBRARY_HINT)
    return library


def _point_number(name: bytes) -> int | None:
    text = name.decode(errors="replace")
    rest = text.removeprefix(_PREFIX)
    return int(rest) if rest != text and rest.isdigit() else None


@_guarded(SQLITE_CANTOPEN)
def _open(_vfs_pointer: int, name: int | None, file: int, flags: int, out_flags: Any) -> int:
    registered = _registered
    assert registered is not None, "SQLite calls a VFS only once it is registered"
    if name is None:  # a temporary file for SQLite's own use: the default VFS's business
        return int(registered.default_open(registered.default_pointer, None, file, flags,
                                           out_flags))
    handle = _File.from_address(file)
    handle.methods = None  # SQLite closes what this points to even when the open fails: nothing
    number = _point_number(ctypes.string_at(name))
    if number is None or number not in _served or not flags & SQLITE_OPEN_MAIN_DB:
        return SQLITE_CANTOPEN
    handle.number = number
    handle.methods = ctypes.addressof(registered.methods)
    if out_flags:
        out_flags[0] = (flags & ~(SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE)) | SQLITE_OPEN_READONLY
    return SQLITE_OK


@_guarded(SQLITE_IOERR_DELETE_NOENT)
def _delete(_vfs: int, _name: bytes, _sync: int) -> int:
    return SQLITE_IOERR_DELETE_NOENT  # nothing here is ever created, so nothing is deleted


@_guarded(SQLITE_ERROR)
def _access(_vfs: int, _name: bytes, _flags: int, exists: Any) -> int:
    exists[0] = 0  # no journal, WAL or other file exists beside a served image
    return SQLITE_OK


@_guarded(SQLITE_CANTOPEN)
def _full_pathname(_vfs: int, name: bytes, size: int, out: int) -> int:
    if len(name) >= size:
        return SQLITE_CANTOPEN
    ctypes.memmove(out, name + b"\0", len(name) + 1)
    return SQLITE_OK
