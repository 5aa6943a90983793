"""The mbox codec: splitting, From_ lines, mboxrd/mboxo quoting, and write -> read round trips."""

from __future__ import annotations

import calendar
import io

from hypothesis import given
from hypothesis import strategies as st

from cps.store.transfer import mbox
from cps.store.transfer.mbox import Quoting

# Body lines chosen to hit every rule: From_ look-alikes, quoted ones, empty lines, binary junk.
_LINES = st.one_of(
    st.sampled_from([
        b"", b"From ", b"From x", b"From - Mon Jun  3 12:50:27 1996", b"From MAILER-DAEMON",
        b">From y", b">>From z", b">>>From ", b"From", b">From", b" From x", b"\r", b"Subject: s",
    ]),
    st.binary(max_size=24).map(lambda data: data.replace(b"\n", b"")),
)
_ENDINGS = st.sampled_from([b"\n", b"\r\n"])
_MESSAGES = st.lists(st.tuples(_LINES, _ENDINGS), min_size=1, max_size=12).map(
    lambda lines: b"".join(line + ending for line, ending in lines)
)
_DATES = st.integers(min_value=0, max_value=253402300799)


def read_back(data: bytes, quoting: Quoting = Quoting.MBOXRD) -> list[bytes]:
    return [mbox.unquote(chunk.data, quoting) for chunk in mbox.split(io.BytesIO(data))]


@given(st.lists(st.tuples(_MESSAGES, _DATES), min_size=1, max_size=6))
def test_messages_ending_in_a_line_break_round_trip_exactly(messages: list[tuple[bytes, int]]) -> None:
    written = b"".join(mbox.write(messages))
    assert read_back(written) == [raw for raw, _date in messages]


@given(st.lists(st.tuples(_MESSAGES, _DATES), min_size=1, max_size=6))
def test_from_lines_carry_the_internal_date(messages: list[tuple[bytes, int]]) -> None:
    chunks = list(mbox.split(io.BytesIO(b"".join(mbox.write(messages)))))
    assert [mbox.from_line_date(chunk.from_line) for chunk in chunks] == [d for _m, d in messages]
    assert all(chunk.from_line.startswith(b"From MAILER-DAEMON ") for chunk in chunks)


@given(_MESSAGES)
def test_mboxrd_quoting_round_trips_and_leaves_no_from_line_at_a_line_start(raw: bytes) -> None:
    quoted = mbox.quote(raw)
    assert mbox.unquote(quoted, Quoting.MBOXRD) == raw
    assert not any(line.startswith(b"From ") for line in quoted.split(b"\n"))


@given(_MESSAGES)
def test_mboxo_round_trips_bodies_without_quoted_from_lines(raw: bytes) -> None:
    body = b"\n".join(line for line in raw.split(b"\n") if not line.startswith(b">"))
    mboxo_quoted = body.replace(b"\nFrom ", b"\n>From ")
    if mboxo_quoted.startswith(b"From "):
        mboxo_quoted = b">" + mboxo_quoted
    assert mbox.unquote(mboxo_quoted, Quoting.MBOXO) == body


def test_a_message_without_a_final_line_break_gains_one() -> None:
    written = b"".join(mbox.write([(b"Subject: a\n\nno newline", 0)]))
    assert written == b"From MAILER-DAEMON Thu Jan  1 00:00:00 1970\nSubject: a\n\nno newline\n\n"
    assert read_back(written) == [b"Subject: a\n\nno newline\n"]


def test_crlf_messages_get_a_crlf_separator_line() -> None:
    written = b"".join(mbox.write([(b"Subject: a\r\n\r\nbody\r\n", 0), (b"S: b\r\n", 0)]))
    assert b"body\r\n\r\nFrom MAILER-DAEMON" in written
    assert read_back(written) == [b"Subject: a\r\n\r\nbody\r\n", b"S: b\r\n"]


def test_only_one_separator_line_is_removed() -> None:
    data = b"From a Mon Jan  5 10:00:00 2004\nS: 1\n\nbody\n\n\n\nFrom b\nS: 2\n"
    assert read_back(data) == [b"S: 1\n\nbody\n\n\n", b"S: 2\n"]


def test_from_lines_in_bodies_do_not_split_unless_after_an_empty_line_and_well_formed() -> None:
    data = (
        b"\xef\xbb\xbfFrom -\nS: 1\n\nThis is my favourite James Bond movie:\n\n"
        b"From Russia with love\nFrom me to you\n\n"
        b"From -\nS: 2\n\nbody\nFrom bob@example.org Tue Jun  2 13:22:01 1998\n"
        b"\nFrom bob@example.org Tue Jun  2 13:22:01 1998\nS: 3\n"
    )
    chunks = list(mbox.split(io.BytesIO(data)))
    assert [chunk.data for chunk in chunks] == [
        b"S: 1\n\nThis is my favourite James Bond movie:\n\nFrom Russia with love\nFrom me to you\n",
        b"S: 2\n\nbody\nFrom bob@example.org Tue Jun  2 13:22:01 1998\n",
        b"S: 3\n",
    ]
    assert [chunk.number for chunk in chunks] == [1, 2, 3]
    assert [chunk.from_line for chunk in chunks] == [
        b"From -\n", b"From -\n", b"From bob@example.org Tue Jun  2 13:22:01 1998\n"]


def test_mboxrd_and_mboxo_unquote_differently() -> None:
    data = b"a\n>From x\n>>From y\n>>>From z\n"
    assert mbox.unquote(data, Quoting.MBOXRD) == b"a\nFrom x\n>From y\n>>From z\n"
    assert mbox.unquote(data, Quoting.MBOXO) == b"a\nFrom x\n>>From y\n>>>From z\n"


def test_a_file_that_does_not_begin_with_a_from_line_is_not_an_mbox() -> None:
    assert list(mbox.split(io.BytesIO(b""))) == []  # an empty file is an empty mbox
    for data in (b"\n", b"Subject: x\n\nFrom y\n", b"\xef\xbb\xbfSubject: x\n"):
        try:
            list(mbox.split(io.BytesIO(data)))
        except mbox.NotAnMbox:
            continue
        raise AssertionError(f"{data!r} was read as an mbox")
    assert mbox.starts_like_mbox(b"\xef\xbb\xbfFrom ")
    assert not mbox.starts_like_mbox(b"from ")


def test_from_line_dates() -> None:
    def utc(*fields: int) -> int:
        return calendar.timegm((*fields, 0, 0, 0))

    assert mbox.from_line_date(b"From a@b Tue Jun  2 13:22:01 1998\n") == utc(1998, 6, 2, 13, 22, 1)
    assert mbox.from_line_date(b"From a@b Sat Jan  3 01:05 1996\n") == utc(1996, 1, 3, 1, 5, 0)
    assert mbox.from_line_date(b"From a Wed Nov 12 09:00:00 +0100 2003\n") == utc(2003, 11, 12, 9, 0, 0)
    assert mbox.from_line_date(b"From a Mon Jan  1 00:00:00 PST 1996") == utc(1996, 1, 1, 0, 0, 0)
    for line in (b"From -\n", b"From Russia with love\n", b"From a Mon Foo 1 00:00:00 1996\n",
                 b"From a Mon Jan 41 00:00:00 1996\n", b"From a Mon Jan 1 25:00:00 1996\n"):
        assert mbox.from_line_date(line) is None, line
