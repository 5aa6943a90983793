"""`LocalStorage`: a repository in a folder of the local file system.

Keys are paths below the folder. A file is put through durable.atomic_write (temp file, fsync,
rename, fsync of the folder), so it is whole or absent after any crash; the temp file of a put
in progress, `.<name>.<random>.tmp`, is never listed. Folders are made as puts need them and
removed when a delete empties them, as a bucket forgets a prefix that holds no object.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ...durable import atomic_write, make_folders
from ...errors import CorruptFile, MissingFile
from .base import Data, Entry, check_folder, check_key


class LocalStorage:
    remote = False

    def __init__(self, root: Path) -> None:
        self.root = root

    def describe(self, key: str = "") -> str:
        return str(self.root / key) if key else str(self.root)

    def put(self, key: str, data: Data) -> None:
        path = self.root / check_key(key)
        while True:
            make_folders(path.parent)
            try:
                atomic_write(path, data)
                return
            except FileNotFoundError:
                # A delete emptied and removed the folder between the two steps; nothing of
                # `data` was consumed, since the temp file could not be made.
                if path.parent.is_dir():
                    raise

    def get(self, key: str) -> bytes:
        path = self.root / check_key(key)
        with _reading(path):
            return path.read_bytes()

    def get_range(self, key: str, offset: int, length: int) -> bytes:
        path = self.root / check_key(key)
        with _reading(path):
            fd = os.open(path, os.O_RDONLY)
            try:
                return os.pread(fd, length, offset)
            finally:
                os.close(fd)

    def size(self, key: str) -> int | None:
        path = self.root / check_key(key)
        try:
            status = path.stat()
        except (FileNotFoundError, NotADirectoryError):
            return None
        return status.st_size if stat.S_ISREG(status.st_mode) else None

    def list(self, folder: str, *, recursive: bool = False) -> list[Entry]:
        top = self.root / check_folder(folder)
        if not top.is_dir():
            return []
        if recursive:
            paths = [Path(parent) / name for parent, _folders, files in os.walk(top)
                     for name in files]
        else:
            paths = list(top.iterdir())
        found = (_entry(path, path.relative_to(top).as_posix()) for path in paths
                 if not _in_progress(path.name))
        return sorted((entry for entry in found if entry is not None), key=lambda e: e.name)

    def delete(self, key: str) -> None:
        path = self.root / check_key(key)
        path.unlink(missing_ok=True)
        folder = path.parent
        while folder != self.root:
            try:
                folder.rmdir()
            except OSError:  # not empty (or removed meanwhile): the folders above are not either
                return
            folder = folder.parent


def _entry(path: Path, name: str) -> Entry | None:
    """The entry of `path`; None when a delete removed it since the folder was read."""
    try:
        status = path.stat()
    except FileNotFoundError:
        return None
    if stat.S_ISDIR(status.st_mode):
        return Entry(name, 0, folder=True)
    return Entry(name, status.st_size)


def _in_progress(name: str) -> bool:
    """Whether `name` is the temp file of a put not finished (durable.atomic_write's pattern)."""
    return name.startswith(".") and name.endswith(".tmp")


@contextmanager
def _reading(path: Path) -> Iterator[None]:
    """Errors of reading `path` as CPS errors: missing, or unreadable (as damage is)."""
    try:
        yield
    except FileNotFoundError:
        raise MissingFile(f"{path} is missing", path=str(path)) from None
    except OSError as exc:
        raise CorruptFile(f"cannot read {path}: {exc.strerror}", path=str(path)) from exc
