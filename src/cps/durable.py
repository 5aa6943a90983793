"""The one place that makes a file durable: temp file, write, fsync, rename, fsync of the folder.

A reader of `path` sees either the old file, no file, or the complete new one, never a part; after
`atomic_write` returns, the new file survives a power cut. Its two halves, `write_temp` and
`publish`, serve a writer that chooses the name only once the bytes are durable (the upload spool).
On any failure the temp file is removed and nothing at `path` has changed.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from pathlib import Path


def atomic_write(path: Path, data: bytes | Iterable[bytes], *, mtime: float | None = None) -> None:
    """Write `data` (bytes, or chunks of bytes) to `path` atomically and durably; `mtime`, if
    given, is set on the file before it appears under its name."""
    temp = write_temp(path.parent, path.name, data)
    try:
        if mtime is not None:
            os.utime(temp, (mtime, mtime))
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    publish(temp, path)


def write_temp(folder: Path, name: str, data: bytes | Iterable[bytes]) -> Path:
    """`data` in a new temp file of `folder`, fsynced, for `publish` to name: a name decided only
    once the bytes are durable (the upload spool numbers its files then). The temp file,
    `.<name>.<random>.tmp`, is removed if writing fails."""
    fd, temp_name = tempfile.mkstemp(prefix=f".{name[:64]}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as handle:
            for chunk in [data] if isinstance(data, bytes) else data:
                handle.write(chunk)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise
    return Path(temp_name)


def publish(temp: Path, path: Path) -> None:
    """Give the durable temp file `temp` (write_temp) its name `path`, durably; on failure the
    temp file is removed and nothing at `path` has changed."""
    try:
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    fsync_folder(path.parent)


def fsync_folder(folder: Path) -> None:
    """Make the names in `folder` (new files, renames) durable."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def make_folders(path: Path) -> None:
    """Create `path` and its missing parents, making each new name durable in its parent."""
    missing = []
    current = path
    while not current.exists():
        missing.append(current)
        current = current.parent
    for folder in reversed(missing):
        folder.mkdir(exist_ok=True)  # or made meanwhile by another writer
        fsync_folder(folder.parent)
