"""Messages at the edges, taken in alike by delivery (SMTP, LMTP) and import: a header line of
2 MiB, a line longer than the size limit, MIME nested far deeper than Python's parser can recurse."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cps.store import MailDatabase, SearchQuery
from cps.store.parse import MAX_MIME_DEPTH
from tests.conftest import run_cps
from tests.integration.intake_helpers import (
    SENDER,
    inbox_received,
    make_database,
    send_lmtp,
    serving,
)

LONG_LINE = 2 * 1024 * 1024


def long_header_message() -> bytes:
    return (b"From: Sender <sender@example.org>\r\nX-Long: " + b"a" * LONG_LINE
            + b"\r\nSubject: long header line\r\n\r\nbody\r\n")


def nested_message(levels: int) -> bytes:
    """A message whose text part is `levels` multipart levels down."""
    opening = b"".join(b'Content-Type: multipart/mixed; boundary="b%d"\r\n\r\n--b%d\r\n' % (n, n)
                       for n in range(levels))
    closing = b"".join(b"--b%d--\r\n" % n for n in reversed(range(levels)))
    return (b"From: Sender <sender@example.org>\r\nSubject: nested %d deep\r\n" % levels + opening
            + b"Content-Type: text/plain\r\n\r\nthe innermost words\r\n" + closing)


def imported(tmp_path: Path, raw: bytes) -> tuple[list[bytes], dict[str, object]]:
    """Import `raw` as one .eml file into a new database: what was stored, and the report."""
    source = tmp_path / "source.eml"
    source.write_bytes(raw)
    db = make_database(tmp_path / "imported.db", "carol@example.com")
    result = run_cps("store", "import", db, source, "--mailbox", "carol@example.com", "--json")
    with MailDatabase.open(db, readonly=True) as database:
        stored = [database.fetch_raw(m.id) for m in database.messages("carol@example.com", "Inbox")]
    return stored, json.loads(result.stdout)


def delivered(tmp_path: Path, raw: bytes) -> tuple[Path, str]:
    """Deliver `raw` to alice over SMTP and to bob over LMTP, check that both mailboxes received
    exactly it, and return the database and the server's log."""
    path = make_database(tmp_path / "mail.db", "alice@example.com", "bob@example.com")
    with serving(tmp_path, path) as served:
        with served.smtp() as client:
            assert client.sendmail(SENDER, ["alice@example.com"], raw) == {}
        with served.lmtp() as client:
            assert [code for code, _ in send_lmtp(client, ["bob@example.com"], raw)] == [250]
    assert inbox_received(path, "alice@example.com") == [raw]
    assert inbox_received(path, "bob@example.com") == [raw]
    return path, served.log.read_text()


def test_a_2_mib_header_line_is_stored_by_smtp_lmtp_and_import(tmp_path: Path) -> None:
    raw = long_header_message()
    delivered(tmp_path, raw)
    stored, report = imported(tmp_path, raw)
    assert (stored, report["imported"]) == ([raw], 1)


def test_a_line_longer_than_the_size_limit_is_a_message_too_big(tmp_path: Path) -> None:
    path = make_database(tmp_path / "mail.db", "alice@example.com")
    with serving(tmp_path, path, options=("--max-size", "1MiB")) as served:
        with served.smtp() as client:
            assert client.ehlo()[0] == 250
            assert client.mail(SENDER)[0] == 250
            assert client.rcpt("alice@example.com")[0] == 250
            assert client.data(long_header_message())[0] == 552
            assert client.noop()[0] == 250
        with served.lmtp() as client:
            replies = send_lmtp(client, ["alice@example.com", "alice@example.com"],
                                long_header_message())
            assert [code for code, _ in replies] == [552, 552]
            assert client.noop()[0] == 250
    assert inbox_received(path, "alice@example.com") == []


@pytest.mark.parametrize("levels", [MAX_MIME_DEPTH, 3000])
def test_deeply_nested_mime_is_stored_by_smtp_lmtp_and_import(tmp_path: Path, levels: int) -> None:
    raw = nested_message(levels)
    path, log = delivered(tmp_path, raw)
    too_deep = levels > MAX_MIME_DEPTH
    assert ("without indexing the parts nested deeper" in log) == too_deep
    with MailDatabase.open(path, readonly=True) as database:
        [message_row] = database.messages("alice@example.com", "Inbox")
        assert message_row.subject == f"nested {levels} deep"
        found = database.search(SearchQuery(text="innermost"))
    assert bool(found) != too_deep  # the text of a part below the limit is not indexed
    stored, report = imported(tmp_path, raw)
    assert (stored, report["imported"], report["rejected"]) == ([raw], 1, 0)
    assert (report["problems"] != []) == too_deep
    if too_deep:
        [problem] = report["problems"]
        assert problem["severity"] == "warning" and "MimeNestingTooDeep" in problem["reason"]


def test_an_empty_message_is_still_refused_with_trace_fields_to_add(tmp_path: Path) -> None:
    path = make_database(tmp_path / "mail.db", "alice@example.com")
    with serving(tmp_path, path) as served, served.lmtp() as client:
        replies = send_lmtp(client, ["alice@example.com"], b"\r\n \r\n")
    assert [code for code, _ in replies] == [554]
    assert inbox_received(path, "alice@example.com") == []
