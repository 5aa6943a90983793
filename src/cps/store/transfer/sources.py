"""What the readers of Maildir, mbox and .eml trees hand the importer (and the exporter hands the
writers), and the file access they share.

A reader turns a source into a stream of events, in source order: a `Candidate` for each message it
found (raw bytes, where it came from, the folder it belongs in relative to the import's target, the
stable key that makes re-imports idempotent), a `FolderMark` for each folder the source has (so empty
folders are created too), and a `Rejected` for each entry it could not read. Readers never raise for
a bad file: one unreadable entry must not stop an import.

Symbolic links found in a source (`SourceTree`) are followed only to a file inside the source: a link
that leaves it could make any file the importing user can read into mail, and a link to a directory
could loop or import a folder twice. Each link not followed is a `Rejected` entry of the report. The
source itself may be a link (it is named by the user), and files are opened without following a
link that appeared after they were listed.
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
# Told how far an import or export is (done, of total: bytes of the source, or messages) as it goes.
Progress = Callable[[int, int], None]
# Reads one file of a tree: (its path, its path relative to the tree as text, its folder).
FileReader = Callable[[str, str, tuple[str, ...]], Iterator[SourceEvent]]


class Unreadable(Exception):
    """A file that cannot be read as a message; the text is the reason shown in the report."""


class SourceTree:
    """The real place of an import's source directory, and the rule for the symbolic links found
    in it."""

    def __init__(self, source: str | Path) -> None:
        self.root = os.path.realpath(source)

    def link_refusal(self, path: str) -> str | None:
        """Why `path`, found in the source, is a symbolic link that is not followed; None when
        it is no link, or a link to a file inside the source."""
        if not os.path.islink(path):
            return None
        target = os.path.realpath(path)
        if os.path.commonpath([self.root, target]) != self.root:
            return f"symbolic link to {display(target)}, outside the source: not followed"
        if os.path.isdir(target):
            return "symbolic link to a directory: not followed"
        return None

    def file(self, path: str) -> str:
        """The path to open for the file `path` found in the source: itself, or the file inside
        the source that a symbolic link leads to. Raises Unreadable for a link not followed."""
        refusal = self.link_refusal(path)
        if refusal is not None:
            raise Unreadable(refusal)
        return os.path.realpath(path) if os.path.islink(path) else path


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
    mail tree is reported instead of hanging the import, and without following a symbolic link
    (resolve the links you accept first: `SourceTree.file`)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOFOLLOW)
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


@dataclass(frozen=True, slots=True)
class TreeFile:
    """A file found in a tree, to be read: the path to open (`SourceTree.file`), its path relative
    to the tree as text, and the folder it is in."""

    path: str
    relative: str
    folder: tuple[str, ...]


def walk_tree(root: Path, read_file: FileReader) -> Iterator[SourceEvent]:
    """What `read_file` finds in every file of `list_tree(root)`, in order, with its folders and
    rejections."""
    for item in list_tree(root):
        if isinstance(item, TreeFile):
            yield from read_file(item.path, item.relative, item.folder)
        else:
            yield item


def list_tree(root: Path) -> Iterator[TreeFile | FolderMark | Rejected]:
    """Every non-hidden entry below `root` in name order: each real directory becomes a folder
    (its name decoded, see `filenames.py`), every other entry a file, unless it is a symbolic link
    that is not followed, which is rejected."""
    yield from _list(SourceTree(root), str(root), "", ())


def _list(
    tree: SourceTree, directory: str, relative: str, folder: tuple[str, ...]
) -> Iterator[TreeFile | FolderMark | Rejected]:
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
            yield from _list(tree, entry.path, f"{relative}{entry.name}/", inner)
            continue
        try:
            path = tree.file(entry.path)
        except Unreadable as exc:
            yield Rejected(display(entry.path), str(exc))
            continue
        yield TreeFile(path, display(relative + entry.name), folder)


def file_size(path: str) -> int:
    """The size of a file, 0 if it cannot be read: an estimate for progress, never an error."""
    try:
        return os.stat(path).st_size
    except OSError:
        return 0


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
