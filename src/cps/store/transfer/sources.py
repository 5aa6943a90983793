"""What the readers of Maildir, mbox and .eml trees hand the importer (and the exporter hands the
writers), and the file access they share.

A reader turns a source into a stream of events, in source order: a `Candidate` for each message it
found (raw bytes, where it came from, the folder it belongs in relative to the import's target, the
stable key that makes re-imports idempotent), a `FolderMark` for each folder the source has (so empty
folders are created too), and a `Rejected` for each entry it could not read. Readers never raise for
a bad file: one unreadable entry must not stop an import.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from .filenames import decode_name

# Internal dates are clamped into 1970-01-01 .. 9999-12-31T23:59:59Z, the range IMAP and every
# calendar library can print.
MIN_DATE = 0
MAX_DATE = 253402300799

_CONTROL_ESCAPES = {c: f"\\x{c:02x}" for c in (*range(0x20), *range(0x7F, 0xA0))}

# Larger messages are rejected: far above any real message, well below SQLite's limit on one value
# (1e9 bytes), and a stray disk image in a mail tree is not read into memory.
MAX_MESSAGE_BYTES = 512 << 20


@dataclass(frozen=True, slots=True)
class Candidate:
    """One message found in a source, not yet parsed."""

    folder: tuple[str, ...]  # relative to the import's target folder, names as found (unchecked)
    key: str  # the `imports.source` value: the same message gives the same key on every run
    where: str  # the file (and position) to name in reports
    raw: bytes
    fixed_date: int | None  # the internal date when the source records one (mtime, From_ line)
    fallback_date: int  # used when there is no fixed date and the Date header does not parse
    flags: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class FolderMark:
    """A folder the source has, created even when it holds no message."""

    folder: tuple[str, ...]
    where: str


@dataclass(frozen=True, slots=True)
class Rejected:
    """An entry of the source that cannot be imported, and why."""

    where: str
    reason: str


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One message being exported, with what every format needs of it."""

    message_id: int
    uid: int
    internal_date: int
    flags: frozenset[str]
    raw: bytes


SourceEvent = Candidate | FolderMark | Rejected
# Reads one file of a tree: (its path, its path relative to the tree as text, its folder).
FileReader = Callable[[str, str, tuple[str, ...]], Iterator[SourceEvent]]


class Unreadable(Exception):
    """A file that cannot be read as a message; the text is the reason shown in the report."""


def read_regular_file(path: str | Path) -> tuple[bytes, int]:
    """The bytes and modification time of a regular file."""
    with open_regular_file(path) as (handle, info):
        if info.st_size > MAX_MESSAGE_BYTES:
            raise Unreadable(too_big(info.st_size))
        try:
            return handle.read(), int(info.st_mtime)
        except OSError as exc:
            raise Unreadable(f"unreadable: {exc.strerror}") from exc


@contextmanager
def open_regular_file(path: str | Path) -> Iterator[tuple[BinaryIO, os.stat_result]]:
    """A regular file open for reading, and its status. Opened without blocking, so a FIFO in a
    mail tree is reported instead of hanging the import."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise Unreadable(f"unreadable: {exc.strerror}") from exc
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise Unreadable(f"not a regular file ({_kind(info.st_mode)})")
    with os.fdopen(fd, "rb") as handle:
        yield handle, info


def list_directory(path: str | Path) -> list[os.DirEntry[str]]:
    """The entries of a directory sorted by name, hidden ones (starting with '.') included."""
    with os.scandir(path) as entries:
        return sorted(entries, key=lambda entry: entry.name)


def is_real_directory(entry: os.DirEntry[str]) -> bool:
    """A directory, not a symbolic link to one: following links could loop or leave the source."""
    try:
        return entry.is_dir(follow_symlinks=False)
    except OSError:
        return False


def walk_tree(
    root: Path, read_file: FileReader, folder: tuple[str, ...] = ()
) -> Iterator[SourceEvent]:
    """Every non-hidden entry below `root` in name order: each real directory becomes a folder
    (its name decoded, see `filenames.py`), everything else is handed to `read_file` with its path
    relative to `root` and the folder it is in."""
    yield from _walk(str(root), "", read_file, folder)


def _walk(
    directory: str, relative: str, read_file: FileReader, folder: tuple[str, ...]
) -> Iterator[SourceEvent]:
    try:
        entries = list_directory(directory)
    except OSError as exc:
        yield Rejected(display(directory), f"unreadable: {exc.strerror}")
        return
    for entry in entries:
        if entry.name.startswith("."):
            continue
        if is_real_directory(entry):
            inner = (*folder, decode_name(entry.name))
            yield FolderMark(inner, display(entry.path))
            yield from _walk(entry.path, f"{relative}{entry.name}/", read_file, inner)
        else:
            yield from read_file(entry.path, display(relative + entry.name), folder)


def display(path: Path | str) -> str:
    """A path as text that is safe to print and to store: bytes that are not UTF-8 and control
    characters in a file name are shown as \\xNN escapes (so a hostile name cannot drive a
    terminal)."""
    text = os.fsencode(path).decode("utf-8", errors="backslashreplace")
    return text.translate(_CONTROL_ESCAPES)


def too_big(size: int) -> str:
    return f"too big: {size} bytes, more than the {MAX_MESSAGE_BYTES} a message may have"


def clamp_date(seconds: int) -> int:
    return min(max(seconds, MIN_DATE), MAX_DATE)


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a file"
