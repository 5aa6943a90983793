"""Which reader reads a source: the formats an import understands and how `auto` picks one."""

from __future__ import annotations

import os
from collections.abc import Iterator
from enum import StrEnum
from pathlib import Path

from . import eml, maildir, mbox
from .mbox import Quoting
from .sources import SourceEvent, TreeFile, Unreadable, file_size, list_tree, open_regular_file


class Format(StrEnum):
    AUTO = "auto"
    MAILDIR = "maildir"
    MBOX = "mbox"
    EML = "eml"


def detect_format(source: Path) -> Format:
    """A directory with cur/ or new/ is a Maildir, a file that begins with a From_ line an mbox,
    any other directory a tree of .eml files, any other file one message."""
    if source.is_dir():
        return Format.MAILDIR if maildir.is_maildir(source) else Format.EML
    try:
        with open_regular_file(os.path.realpath(source)) as (handle, _info):
            head = handle.read(len(mbox.BOM) + len(mbox.FROM_))
    except (Unreadable, OSError):
        return Format.EML  # the eml reader reports why the file cannot be read
    return Format.MBOX if mbox.starts_like_mbox(head) else Format.EML


def read_source(source: Path, kind: Format, quoting: Quoting) -> Iterator[SourceEvent]:
    """The events of a source in a known format (not `auto`)."""
    if kind is Format.MAILDIR:
        return maildir.read_tree(source)
    if kind is Format.MBOX:
        return mbox.read_tree(source, quoting)
    return eml.read_tree(source)


def source_size(source: Path, kind: Format) -> int:
    """How many bytes the files an import of `source` (in a known format) reads hold: the total of
    its progress. A directory is listed once more for this; no file is read."""
    if kind is Format.MAILDIR:
        paths: Iterator[str] = maildir.message_paths(source)
    elif source.is_dir():
        paths = (item.path for item in list_tree(source) if isinstance(item, TreeFile))
    else:
        paths = iter([os.path.realpath(source)])
    return sum(file_size(path) for path in paths)
