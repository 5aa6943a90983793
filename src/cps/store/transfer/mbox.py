"""The mbox format: splitting a file into messages, quoting body lines, and From_ lines.

An mbox file is a sequence of messages, each introduced by a From_ line ("From " sender asctime)
and followed by an empty line. Reading:

* A line beginning "From " separates messages only at the start of the file or right after an empty
  line, and (after the first) only when it looks like a From_ line: a sender alone ("From -") or a
  sender and an asctime date. So an unquoted "From " in the body of a carelessly written mbox
  ("From Russia with love", even after an empty line) does not split a message. A UTF-8 byte
  order mark before the first From_ line is ignored.
* The empty line before the next From_ line belongs to the format, not to the message: when a
  message's chunk ends in "\\n\\n" exactly one "\\n" is removed, when it ends in "\\r\\n\\r\\n" one
  "\\r\\n".
* Un-quoting: mboxrd removes one '>' from every line matching ^>+From ; mboxo removes one from
  ^>From  only. mboxo cannot tell a quoted "From " from a body line that really began ">From ",
  mboxrd can, so mboxrd is the default and the only format written.

Writing (mboxrd) adds one '>' to every line matching ^>*From , starts each message with
"From MAILER-DAEMON <asctime of the internal date, UTC>" and ends it with an empty line in the
message's own line-break style. A message that does not end in a line break is given "\\n" first:
that is the one case where writing and reading back does not return the exact bytes.
"""

from __future__ import annotations

import calendar
import hashlib
import os
import re
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from functools import partial
from pathlib import Path
from typing import BinaryIO

from ...durable import atomic_write, make_folders
from .filenames import decode_name, encode_name
from .sources import (
    Candidate,
    FolderMark,
    Outgoing,
    Rejected,
    SourceEvent,
    Unreadable,
    display,
    open_regular_file,
    walk_tree,
)

SUFFIX = ".mbox"
BOM = b"\xef\xbb\xbf"
FROM_ = b"From "
_EMPTY_LINES = (b"\n", b"\r\n")
_UNQUOTE = {"mboxrd": re.compile(rb"^>(>*From )", re.M), "mboxo": re.compile(rb"^>(From )", re.M)}
_QUOTE = re.compile(rb"^(>*From )", re.M)
_SENDER_ONLY = re.compile(rb"From \S+\s*$")
_MONTHS = {name.encode(): number for number, name in enumerate(calendar.month_abbr) if name}
_ASCTIME = re.compile(
    rb"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)\s+([A-Z][a-z]{2})\s+(\d{1,2})\s+"
    rb"(\d{1,2}):(\d{2})(?::(\d{2}))?\s+(?:[A-Za-z]{3,5}\s+|[+-]\d{4}\s+)?(\d{4})\b"
)


class Quoting(StrEnum):
    MBOXRD = "mboxrd"
    MBOXO = "mboxo"


@dataclass(frozen=True, slots=True)
class Chunk:
    """One message of an mbox file as found: still quoted, separator line removed."""

    number: int  # 1-based position in the file
    from_line: bytes
    data: bytes


class NotAnMbox(ValueError):
    """The file does not begin with a From_ line."""


def starts_like_mbox(head: bytes) -> bool:
    """Whether a file beginning with `head` is an mbox (a From_ line first, after any BOM)."""
    return head.removeprefix(BOM).startswith(FROM_)


def split(stream: BinaryIO) -> Iterator[Chunk]:
    """The messages of an mbox file in order, read line by line (a file of any size)."""
    first = stream.readline().removeprefix(BOM)
    if not first:
        return  # an empty file is an mbox without messages
    if not first.startswith(FROM_):
        raise NotAnMbox("it does not begin with a 'From ' line")
    number, from_line = 1, first
    lines: list[bytes] = []
    after_empty = False
    for line in stream:
        if after_empty and is_from_line(line):
            yield Chunk(number, from_line, _without_separator(b"".join(lines)))
            number, from_line = number + 1, line
            lines = []
            after_empty = False
            continue
        lines.append(line)
        after_empty = line in _EMPTY_LINES
    yield Chunk(number, from_line, _without_separator(b"".join(lines)))


def is_from_line(line: bytes) -> bool:
    """Whether a line after an empty one starts a new message."""
    if not line.startswith(FROM_):
        return False
    return bool(_SENDER_ONLY.match(line)) or from_line_date(line) is not None


def unquote(data: bytes, quoting: Quoting) -> bytes:
    return _UNQUOTE[quoting].sub(rb"\1", data)


def quote(raw: bytes) -> bytes:
    return _QUOTE.sub(rb">\1", raw)


def from_line_date(from_line: bytes) -> int | None:
    """Seconds since the epoch of the asctime in a From_ line, read as UTC; None if it has none."""
    match = _ASCTIME.search(from_line)
    if not match:
        return None
    month_name, day, hour, minute, second, year = match.groups()
    month = _MONTHS.get(month_name)
    if month is None:
        return None
    fields = (int(year), month, int(day), int(hour), int(minute), int(second or 0))
    if not (1 <= fields[2] <= 31 and fields[3] < 24 and fields[4] < 60 and fields[5] < 61):
        return None
    return calendar.timegm(fields)


def write(messages: Iterable[tuple[bytes, int]]) -> Iterator[bytes]:
    """mboxrd bytes of (raw message, internal date) pairs, in pieces for a streaming write."""
    for raw, internal_date in messages:
        stamp = time.asctime(time.gmtime(internal_date)).encode()
        body = quote(raw)
        if not body.endswith(b"\n"):
            body += b"\n"
        yield b"From MAILER-DAEMON " + stamp + b"\n"
        yield body
        yield b"\r\n" if body.endswith(b"\r\n") else b"\n"


def _without_separator(data: bytes) -> bytes:
    if data.endswith(b"\r\n\r\n"):
        return data[:-2]
    if data.endswith(b"\n\n"):
        return data[:-1]
    return data


def read_tree(root: Path, quoting: Quoting) -> Iterator[SourceEvent]:
    """The messages of one mbox file (into the target folder itself), or of a directory tree of
    them where each file is a folder named after it (without a ".mbox" suffix) and each directory
    a folder holding the folders of its files."""
    if root.is_dir():
        return walk_tree(root, partial(_read_tree_file, quoting=quoting))
    return read_file(os.path.realpath(root), display(root.name), (), quoting)


def read_file(
    path: str, relative: str, folder: tuple[str, ...], quoting: Quoting
) -> Iterator[SourceEvent]:
    now = int(time.time())
    where = display(path)
    number = 0
    try:
        with open_regular_file(path) as (handle, _info):
            for chunk in split(handle):
                number = chunk.number
                raw = unquote(chunk.data, quoting)
                key = f"mbox:{relative}:{number}:{hashlib.sha256(raw).hexdigest()}"
                date = from_line_date(chunk.from_line)
                yield Candidate(folder, key, f"{where}#{number}", raw, date, now)
    except Unreadable as exc:
        yield Rejected(where, str(exc))
    except NotAnMbox as exc:
        yield Rejected(where, f"not an mbox: {exc}")
    except OSError as exc:
        yield Rejected(f"{where}#{number + 1}", f"unreadable: {exc.strerror}")


def _read_tree_file(
    path: str, relative: str, folder: tuple[str, ...], *, quoting: Quoting
) -> Iterator[SourceEvent]:
    name = os.path.basename(path)
    inner = (*folder, decode_name(name.removesuffix(SUFFIX) or name))
    yield FolderMark(inner, display(path))
    yield from read_file(path, relative, inner, quoting)


def write_folder(root: Path, folder: tuple[str, ...], messages: Iterable[Outgoing]) -> None:
    """Write messages as the mbox file of `folder` (a non-empty path) below `root`: "A/B.mbox"
    for folder A/B."""
    directory = root.joinpath(*(encode_name(name, suffix=SUFFIX) for name in folder[:-1]))
    make_folders(directory)
    file_name = encode_name(folder[-1], suffix=SUFFIX, reserve=len(SUFFIX)) + SUFFIX
    atomic_write(directory / file_name, write((m.raw, m.internal_date) for m in messages))

