"""Trees of .eml files: one file per message, one directory per folder, in both directions.

Reading: every regular, non-hidden file is one message, whatever its name; every directory becomes
a subfolder of the target folder; a single file is one message. The internal date is the Date
header when it parses, else the file's mtime. The import key is the file's path relative to the tree
plus the SHA-256 of its bytes, so a file whose content changed is imported again.

Writing: a folder is a directory (names encoded by `filenames.py`), its messages "<uid>.eml" with
the internal date as mtime, bytes exactly as stored.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from ...durable import atomic_write, make_folders
from .filenames import encode_name
from .sources import (
    Candidate,
    Outgoing,
    Rejected,
    SourceEvent,
    Unreadable,
    display,
    read_regular_file,
    walk_tree,
)

SUFFIX = ".eml"


def read_tree(root: Path) -> Iterator[SourceEvent]:
    """The messages of a directory tree of .eml files, or of one .eml file."""
    if root.is_dir():
        return walk_tree(root, read_file)
    return read_file(os.path.realpath(root), display(root.name), ())


def read_file(path: str, relative: str, folder: tuple[str, ...]) -> Iterator[SourceEvent]:
    where = display(path)
    try:
        raw, mtime = read_regular_file(path)
    except Unreadable as exc:
        yield Rejected(where, str(exc))
        return
    key = f"eml:{relative}:{hashlib.sha256(raw).hexdigest()}"
    yield Candidate(folder, key, where, raw, fixed_date=None, fallback_date=mtime)


def folder_directory(root: Path, folder: tuple[str, ...]) -> Path:
    return root.joinpath(*(encode_name(name, suffix=SUFFIX) for name in folder))


def write_folder(root: Path, folder: tuple[str, ...], messages: Iterable[Outgoing]) -> None:
    """Write messages as "<uid>.eml" files of the folder's directory below `root`."""
    directory = folder_directory(root, folder)
    make_folders(directory)
    for message in messages:
        path = directory / f"{message.uid}{SUFFIX}"
        atomic_write(path, message.raw, mtime=message.internal_date)
