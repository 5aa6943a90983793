"""The parsing stage of an import: skipping, folder checks, internal dates, rejections, remarks."""

from __future__ import annotations

import pytest

from cps.store.transfer import prepare as prepare_module
from cps.store.transfer.prepare import Note, Ready, Skipped, prepare
from cps.store.transfer.sources import MAX_DATE, Candidate, FolderMark, Rejected

DATED = b"Subject: s\nDate: Tue, 2 Jun 1998 13:22:01 +0000\n\nbody\n"
UNDATED = b"Subject: s\n\nbody\n"


def candidate(raw: bytes, *, key: str = "k", folder: tuple[str, ...] = (),
              fixed: int | None = None, fallback: int = 5) -> Candidate:
    return Candidate(folder, key, f"where-{key}", raw, fixed_date=fixed, fallback_date=fallback)


def dates(*candidates: Candidate) -> list[int]:
    return [e.internal_date for e in prepare(candidates, set()) if isinstance(e, Ready)]


def test_the_internal_date_is_the_fixed_one_then_the_date_header_then_the_fallback() -> None:
    assert dates(candidate(DATED, fixed=7)) == [7]
    assert dates(candidate(DATED)) == [896793721]
    assert dates(candidate(UNDATED)) == [5]
    assert dates(candidate(b"Subject: s\nDate: not a date\n\nbody\n")) == [5]


def test_internal_dates_are_clamped_into_1970_to_9999() -> None:
    assert dates(candidate(UNDATED, fixed=-86400)) == [0]
    assert dates(candidate(UNDATED, fixed=MAX_DATE + 86400)) == [MAX_DATE]
    assert dates(candidate(b"Date: Thu, 1 Jan 1920 00:00:00 +0000\n\nold\n")) == [0]


def test_known_keys_are_skipped_and_each_key_is_handled_once() -> None:
    done = {"old"}
    events = list(prepare([candidate(UNDATED, key="old"), candidate(UNDATED, key="new"),
                           candidate(DATED, key="new")], done))
    assert [type(e) for e in events] == [Skipped, Ready, Skipped]
    assert done == {"old", "new"}


def test_bad_folders_and_empty_messages_are_rejected_with_their_place() -> None:
    events = list(prepare([
        candidate(UNDATED, key="a", folder=("ok", "bad\x07")),
        candidate(b" \r\n\t", key="b"),
        FolderMark(("fine", "Café"), "dir-fine"),
        FolderMark(("trailing ",), "dir-bad"),
    ], set()))
    assert [(type(e).__name__, getattr(e, "where", ""), getattr(e, "reason", "")) for e in events] == [
        ("Rejected", "where-a", "invalid folder name 'bad\\x07': it contains control characters"),
        ("Rejected", "where-b", "empty message"),
        ("FolderMark", "dir-fine", ""),
        ("Note", "dir-bad", "folder not created: invalid folder name 'trailing ': it starts or "
                            "ends with white space"),
    ]
    assert events[2] == FolderMark(("fine", "Café"), "dir-fine")
    assert isinstance(events[3], Note) and events[3].severity == "error"
    assert isinstance(events[0], Rejected)


def test_parse_defects_are_warnings_after_the_message() -> None:
    broken = b"Content-Type: multipart/mixed; boundary=x\n\n--x\nContent-Type: text/plain\n\nhi\n"
    events = list(prepare([candidate(broken)], set()))
    assert isinstance(events[0], Ready) and events[0].message.raw == broken
    assert isinstance(events[1], Note) and events[1].severity == "warning"
    assert events[1].reason.startswith("parse defects: ") and "Boundary" in events[1].reason


def test_without_parsing_checked_messages_are_passed_on_unparsed() -> None:
    messages = [candidate(UNDATED, key=str(n % 2)) for n in range(3)]
    events = list(prepare(messages, set(), parsing=False))
    assert [type(e) for e in events] == [Candidate, Candidate, Skipped]


def test_messages_over_the_size_limit_are_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(prepare_module, "MAX_MESSAGE_BYTES", len(UNDATED))
    events = list(prepare([candidate(UNDATED, key="fits"), candidate(UNDATED + b"!", key="big")],
                          set()))
    assert isinstance(events[0], Ready)
    assert isinstance(events[1], Rejected) and events[1].where == "where-big"
    assert events[1].reason.startswith(f"too big: {len(UNDATED) + 1} bytes")
