"""The parsing stage of an import: from what a reader found to what the writer stores.

Everything slow and fallible happens here, outside any write transaction: skipping messages an
earlier run already imported, checking folder names, parsing, choosing the internal date. The stage
is a plain generator over picklable records; it runs whole in the writer's process, or without the
parsing, which worker processes then do (see `worker.py`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from typing import Literal

from ...errors import InvalidMessage, InvalidName
from ..database import parse_message
from ..messages import ParsedMessage
from ..names import check_folder_name
from .sources import (
    MAX_MESSAGE_BYTES,
    Candidate,
    FolderMark,
    Rejected,
    SourceEvent,
    clamp_date,
    too_big,
)

Severity = Literal["error", "warning"]


@dataclass(frozen=True, slots=True)
class Ready:
    """A parsed message with its checked folder path, ready to be placed."""

    folder: tuple[str, ...]
    key: str
    where: str
    message: ParsedMessage
    internal_date: int
    flags: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Skipped:
    """A message an earlier run imported already, and its size (for the import's progress)."""

    size: int


@dataclass(frozen=True, slots=True)
class Note:
    """A remark for the report that changes no count: a parse defect of an imported message
    ("warning"), or a folder that could not be created ("error")."""

    where: str
    reason: str
    severity: Severity


PreparedEvent = Ready | Skipped | FolderMark | Rejected | Note | Candidate


def prepare(
    events: Iterable[SourceEvent], done: set[str], *, parsing: bool = True
) -> Iterator[PreparedEvent]:
    """Turn reader events into writer events; `done` holds the keys of messages already imported
    and is extended with every key seen, so a key is handled once. Without `parsing`, messages
    are passed on checked but unparsed, as `Candidate`s, for worker processes to parse (see
    `worker.py`)."""
    folders = _FolderChecker()
    for event in events:
        if isinstance(event, Candidate):
            checked = _check(event, folders, done)
            if isinstance(checked, Candidate) and parsing:
                yield from parse(checked)
            else:
                yield checked
        elif isinstance(event, FolderMark):
            folder = folders.check(event.folder)
            if isinstance(folder, str):
                yield Note(event.where, f"folder not created: {folder}", "error")
            else:
                yield FolderMark(folder, event.where)
        else:
            yield event


def parse(candidate: Candidate) -> Iterator[Ready | Rejected | Note]:
    """Parse a checked candidate (its folder path already checked) into what the writer takes."""
    return parsed_events(candidate, parse_raw(candidate.raw))


def parse_raw(raw: bytes) -> ParsedMessage | str:
    """The parsed message, or why it cannot be imported."""
    try:
        return parse_message(raw)
    except InvalidMessage as exc:
        return exc.message
    except Exception as exc:  # a parser bug on one odd message must not stop the import
        return f"cannot be parsed: {type(exc).__name__}: {exc}"


def parsed_events(
    candidate: Candidate, parsed: ParsedMessage | str
) -> Iterator[Ready | Rejected | Note]:
    """What the writer takes for a candidate, given `parse_raw` of its bytes."""
    if isinstance(parsed, str):
        yield Rejected(candidate.where, parsed)
        return
    envelope = parsed.envelope
    date = candidate.fixed_date
    if date is None:
        date = envelope.date if envelope.date is not None else candidate.fallback_date
    yield Ready(
        candidate.folder, candidate.key, candidate.where, parsed, clamp_date(date),
        candidate.flags,
    )
    if envelope.defects:
        yield Note(candidate.where, f"parse defects: {', '.join(envelope.defects)}", "warning")


def _check(
    candidate: Candidate, folders: _FolderChecker, done: set[str]
) -> Candidate | Skipped | Rejected:
    if candidate.key in done:
        return Skipped(len(candidate.raw))
    done.add(candidate.key)
    folder = folders.check(candidate.folder)
    if isinstance(folder, str):
        return Rejected(candidate.where, folder)
    if len(candidate.raw) > MAX_MESSAGE_BYTES:
        return Rejected(candidate.where, too_big(len(candidate.raw)))
    return candidate if folder == candidate.folder else replace(candidate, folder=folder)


class _FolderChecker:
    """Checks folder paths against the store's name rules, once per path."""

    def __init__(self) -> None:
        self._seen: dict[tuple[str, ...], tuple[str, ...] | str] = {}

    def check(self, folder: tuple[str, ...]) -> tuple[str, ...] | str:
        """The checked (NFC) path, or the reason it cannot be stored."""
        if folder not in self._seen:
            try:
                self._seen[folder] = tuple(check_folder_name(name) for name in folder)
            except InvalidName as exc:
                self._seen[folder] = exc.message
        return self._seen[folder]
