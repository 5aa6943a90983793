"""Maildir and Maildir++: reading a Maildir tree into messages, writing folders out as one.

A Maildir folder is a directory with cur/, new/ and tmp/. A message is one file in new/ (delivered,
not yet seen by a client) or cur/, named "<unique>" or "<unique>:2,<flags>"; tmp/ holds deliveries
in progress and is never read. Maildir++ keeps subfolders beside the top folder as directories
".A.B" (folder A/B); a "." inside a name is written "%2E" (see `filenames.py`), names are UTF-8.

Flags in the info suffix: S \\Seen, R \\Answered, F \\Flagged, T \\Deleted, D \\Draft, P the keyword
$Forwarded. Other letters (Dovecot's per-folder keyword letters) are ignored on import; on export,
keywords other than $Forwarded are not written. A message's internal date is its file's mtime.

The import key of a message is its folder directory and unique name ("maildir:.A.B/1234.host"), which
does not change when a client moves the file from new/ to cur/ or changes its flags.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from ...durable import atomic_write, make_folders
from .filenames import decode_name, encode_name, fit_name
from .sources import (
    Candidate,
    FolderMark,
    Outgoing,
    Rejected,
    SourceEvent,
    Unreadable,
    display,
    list_directory,
    read_regular_file,
)

INFO_FLAGS: dict[str, str] = {
    "D": "\\Draft",
    "F": "\\Flagged",
    "P": "$Forwarded",
    "R": "\\Answered",
    "S": "\\Seen",
    "T": "\\Deleted",
}
_LETTERS = {flag.lower(): letter for letter, flag in INFO_FLAGS.items()}
_SUBDIRECTORIES = ("cur", "new", "tmp")


def is_maildir(path: Path) -> bool:
    return (path / "cur").is_dir() or (path / "new").is_dir()


def parse_file_name(name: str) -> tuple[str, tuple[str, ...]]:
    """The unique name and the flags of a Maildir file name ("1234.host:2,RS")."""
    unique, _, info = name.partition(":")
    if not info.startswith("2,"):
        return unique, ()
    return unique, tuple(sorted({INFO_FLAGS[c] for c in info[2:] if c in INFO_FLAGS}))


def info_suffix(flags: Iterable[str]) -> str:
    """The ":2,<letters>" suffix for a message's flags, letters in ASCII order as Maildir asks."""
    letters = {_LETTERS[flag.lower()] for flag in flags if flag.lower() in _LETTERS}
    return ":2," + "".join(sorted(letters))


def folder_directory(folder: tuple[str, ...]) -> str:
    """The Maildir++ directory name of a folder below the top one ("" for the top itself)."""
    if not folder:
        return ""
    return fit_name("." + ".".join(encode_name(name, all_dots=True) for name in folder))


def read_tree(root: Path) -> Iterator[SourceEvent]:
    """The messages of the Maildir at `root` and of its Maildir++ subfolders."""
    yield from _read_folder(root, "", ())
    try:
        entries = list_directory(root)
    except OSError as exc:
        yield Rejected(display(root), f"unreadable: {exc.strerror}")
        return
    for entry in entries:
        if not entry.name.startswith(".") or entry.name in (".", ".."):
            continue
        if not entry.is_dir():
            continue
        folder = tuple(decode_name(part) for part in entry.name[1:].split("."))
        yield FolderMark(folder, display(entry.path))
        yield from _read_folder(Path(entry.path), entry.name, folder)


def write_folder(root: Path, folder: tuple[str, ...], messages: Iterable[Outgoing]) -> None:
    """Write messages as a Maildir++ folder below `root`. Every file goes to cur/ (its flags say
    whether it was seen), under a name made unique by the message id."""
    directory = root / folder_directory(folder)
    for sub in _SUBDIRECTORIES:
        make_folders(directory / sub)
    for message in messages:
        name = f"{message.internal_date}.M{message.message_id}.cps{info_suffix(message.flags)}"
        atomic_write(directory / "cur" / name, message.raw, mtime=message.internal_date)


def _read_folder(directory: Path, name: str, folder: tuple[str, ...]) -> Iterator[SourceEvent]:
    files: list[tuple[str, str, os.DirEntry[str]]] = []
    for sub in ("cur", "new"):
        try:
            entries = list_directory(directory / sub)
        except FileNotFoundError:
            continue
        except OSError as exc:
            yield Rejected(display(directory / sub), f"unreadable: {exc.strerror}")
            continue
        files.extend((entry.name, sub, entry) for entry in entries if not entry.name.startswith("."))
    for file_name, sub, entry in sorted(files, key=lambda found: found[:2]):
        yield _candidate(entry, sub, name, folder, file_name)


def _candidate(
    entry: os.DirEntry[str], sub: str, name: str, folder: tuple[str, ...], file_name: str
) -> SourceEvent:
    where = display(entry.path)
    try:
        raw, mtime = read_regular_file(entry.path)
    except Unreadable as exc:
        return Rejected(where, str(exc))
    unique, flags = parse_file_name(file_name)
    if sub == "new":
        flags = tuple(flag for flag in flags if flag != "\\Seen")
    key = "maildir:" + display(f"{name}/{unique}" if name else unique)
    return Candidate(folder, key, where, raw, fixed_date=mtime, fallback_date=mtime, flags=flags)
