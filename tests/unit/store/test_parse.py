from __future__ import annotations

import os
from pathlib import Path

from cps.store.parse import MAX_MIME_DEPTH, TOO_DEEP, decode_header_value, parse_envelope


def test_envelope_fields_are_decoded() -> None:
    raw = (
        b"Message-ID: <1@x>\r\nFrom: =?utf-8?q?J=C3=BCrgen?= <j@x>\r\nTo: a@x, b@x\r\n"
        b"Cc: c@x\r\nSubject: =?iso-8859-1?q?caf=E9?=\r\nDate: Mon, 23 Nov 2026 10:00:00 +0100\r\n"
        b"In-Reply-To: <0@x>\r\nReferences: <a@x>\r\n <0@x>\r\n\r\nHello world\r\n"
    )
    env = parse_envelope(raw)
    assert env.message_id == "<1@x>"
    assert env.from_ == "Jürgen <j@x>"
    assert env.subject == "café"
    assert env.to == "a@x, b@x" and env.cc == "c@x"
    assert env.date == 1795424400
    assert env.references == "<a@x> <0@x>"
    assert "Hello world" in env.text
    assert env.attachments == ()


def test_raw_8bit_headers_decode_as_utf8_or_windows_1252() -> None:
    utf8 = parse_envelope("Subject: caf\u00e9\n\nx".encode())
    latin = parse_envelope("Subject: caf\u00e9\n\nx".encode("latin-1"))
    assert utf8.subject == "café" and latin.subject == "café"
    assert "NonAsciiHeader" in latin.defects


def test_attachments_and_html_text() -> None:
    raw = (
        b"Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: text/html\n\n"
        b"<p>Quarterly <b>figures</b></p>\n--b\nContent-Type: application/pdf\n"
        b"Content-Disposition: attachment; filename=\"q3.pdf\"\nContent-Transfer-Encoding: base64\n\n"
        b"JVBERi0xLjQK\n--b--\n"
    )
    env = parse_envelope(raw)
    assert "Quarterly" in env.text and "figures" in env.text and "<b>" not in env.text
    assert [(a.filename, a.content_type, a.size) for a in env.attachments] == [
        ("q3.pdf", "application/pdf", 9)]


def test_a_file_is_named_by_either_field_in_any_case() -> None:
    raw = (
        b"Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: text/plain; NAME=a.txt\n\n"
        b"one\n--b\nContent-Type: text/plain\nContent-Disposition: inline; FileName*=utf-8''%C3%A9.txt\n"
        b"\ntwo\n--b\nContent-Type: text/plain; charset=utf-8; format=flowed\n\nthree\n--b--\n"
    )
    env = parse_envelope(raw)
    assert [a.filename for a in env.attachments] == ["a.txt", "\u00e9.txt"]
    assert "three" in env.text and "one" not in env.text


def test_broken_messages_give_defects_not_exceptions() -> None:
    env = parse_envelope(b"Content-Type: multipart/mixed; boundary=zz\n\n--zz\nno end\n")
    assert env.defects
    assert parse_envelope(b"no header separator at all").subject == ""
    assert decode_header_value("=?bogus-charset?q?x=41?=") == "xA"


def test_duplicate_message_id_is_a_defect() -> None:
    env = parse_envelope(b"Message-ID: <a@x>\nMessage-ID: <b@x>\n\nbody")
    assert env.message_id == "<a@x>"
    assert "DuplicateMessageIDHeader" in env.defects


def nested(levels: int, inner: bytes) -> bytes:
    """A multipart/mixed part whose last part is `levels` - 1 levels further down, holding
    `inner`; each level ends with a text part of its own after the nested one."""
    if levels == 0:
        return inner
    return (b"Content-Type: multipart/mixed; boundary=b%d\n\n--b%d\n" % (levels, levels)
            + nested(levels - 1, inner) + b"\n--b%d\nContent-Type: text/plain\n\nlevel%d\n--b%d--\n"
            % (levels, levels, levels))


def test_mime_nesting_is_followed_to_the_limit_and_no_further() -> None:
    inner = b"Content-Type: text/plain\n\ninnermost\n"
    at_limit = parse_envelope(b"Subject: s\n" + nested(MAX_MIME_DEPTH, inner))
    assert "innermost" in at_limit.text.split() and TOO_DEEP not in at_limit.defects
    beyond = parse_envelope(b"Subject: s\n" + nested(MAX_MIME_DEPTH + 1, inner))
    assert beyond.subject == "s" and TOO_DEEP in beyond.defects
    words = beyond.text.split()
    # the text beside each part down to the limit is indexed; the part past it is not looked into
    assert "innermost" not in words and "level1" not in words
    assert {f"level{n}" for n in range(2, MAX_MIME_DEPTH + 2)} <= set(words)
    assert beyond.attachments == ()


def test_nesting_far_past_the_recursion_limit_parses() -> None:
    multipart = b"".join(b"Content-Type: multipart/mixed; boundary=b%d\n\n--b%d\n" % (n, n)
                         for n in range(5000))
    forwarded = b"Content-Type: message/rfc822\n\n" * 5000
    for raw in (b"Subject: deep\n" + multipart, b"Subject: deep\n" + forwarded):
        env = parse_envelope(raw + b"Subject: inner\n\nwords\n")
        assert (env.subject, env.text, TOO_DEEP in env.defects) == ("deep", "", True)


def test_every_corpus_message_parses(corpus: Path) -> None:
    """No message of the real corpus, however broken, makes parsing raise."""
    parsed = 0
    for folder, _dirs, files in os.walk(corpus / "tricky"):
        for name in files:
            raw = (Path(folder) / name).read_bytes()
            env = parse_envelope(raw)
            assert isinstance(env.text, str)
            parsed += 1
    assert parsed >= 700
