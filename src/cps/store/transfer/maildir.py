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

Symbolic links: a folder directory, cur/ or new/ that is a link is not followed, and a message file
that is a link is read only when it leads to a file inside the Maildir (`sources.SourceTree`).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from ...durable import atomic_write, make_folders
from .filenames import decode_name, encode_name, fit_name
from .sources import (
    Candidate,
    FolderMark,
    Outgoing,
    Rejected,
    SourceEvent,
    SourceTree,
    Unreadable,
    display,
    is_real_directory,
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


@dataclass(frozen=True, slots=True)
class _MessageFile:
    """A message file of a Maildir folder: where it is, in cur/ or new/, the folder directory's
    name ("" for the top folder) and the folder it holds messages of."""

    entry: os.DirEntry[str]
    sub: str
    directory: str
    folder: tuple[str, ...]


def read_tree(root: Path) -> Iterator[SourceEvent]:
    """The messages of the Maildir at `root` and of its Maildir++ subfolders."""
    tree = SourceTree(root)
    for item in _list_tree(tree, root):
        yield _candidate(tree, item) if isinstance(item, _MessageFile) else item


def message_paths(root: Path) -> Iterator[str]:
    """The message files `read_tree` reads."""
    return (item.entry.path for item in _list_tree(SourceTree(root), root)
            if isinstance(item, _MessageFile))


def _list_tree(tree: SourceTree, root: Path) -> Iterator[_MessageFile | FolderMark | Rejected]:
    yield from _list_folder(tree, root, "", ())
    try:
        entries = list_directory(root)
    except OSError as exc:
        yield Rejected(display(root), f"unreadable: {exc.strerror}")
        return
    for entry in entries:
        if not entry.name.startswith(".") or entry.name in (".", ".."):
            continue
        if entry.is_symlink():
            # a link in the place of a folder; other links here are no folders, as other files
            refusal = tree.link_refusal(entry.path)
            if refusal is not None and os.path.isdir(entry.path):
                yield Rejected(display(entry.path), refusal)
            continue
        if not is_real_directory(entry):
            continue
        folder = tuple(decode_name(part) for part in entry.name[1:].split("."))
        yield FolderMark(folder, display(entry.path))
        yield from _list_folder(tree, Path(entry.path), entry.name, folder)


def write_folder(root: Path, folder: tuple[str, ...], messages: Iterable[Outgoing]) -> None:
    """Write messages as a Maildir++ folder below `root`. Every file goes to cur/ (its flags say
    whether it was seen), under a name made unique by the message id."""
    directory = root / folder_directory(folder)
    for sub in _SUBDIRECTORIES:
        make_folders(directory / sub)
    for message in messages:
        name = f"{message.internal_date}.M{message.message_id}.cps{info_suffix(message.flags)}"
        atomic_write(directory / "cur" / name, message.raw, mtime=message.internal_date)


def _list_folder(
    tree: SourceTree, directory: Path, name: str, folder: tuple[str, ...]
) -> Iterator[_MessageFile | Rejected]:
    files: list[_MessageFile] = []
    for sub in ("cur", "new"):
        refusal = tree.link_refusal(str(directory / sub))
        if refusal is not None:
            yield Rejected(display(directory / sub), refusal)
            continue
        try:
            entries = list_directory(directory / sub)
        except FileNotFoundError:
            continue
        except OSError as exc:
            yield Rejected(display(directory / sub), f"unreadable: {exc.strerror}")
            continue
        files.extend(_MessageFile(entry, sub, name, folder) for entry in entries
                     if not entry.name.startswith("."))
    yield from sorted(files, key=lambda found: (found.entry.name, found.sub))


def _candidate(tree: SourceTree, found: _MessageFile) -> SourceEvent:
    where = display(found.entry.path)
    try:
        raw, mtime = read_regular_file(tree.file(found.entry.path))
    except Unreadable as exc:
        return Rejected(where, str(exc))
    unique, flags = parse_file_name(found.entry.name)
    if found.sub == "new":
        flags = tuple(flag for flag in flags if flag != "\\Seen")
    key = "maildir:" + display(f"{found.directory}/{unique}" if found.directory else unique)
    return Candidate(found.folder, key, where, raw, fixed_date=mtime, fallback_date=mtime,
                     flags=flags)
