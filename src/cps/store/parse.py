"""Reading what the store indexes out of a raw RFC 5322 message, without ever refusing one.

The raw bytes are the message; everything here is derived from them and may be recomputed. Real mail
is often malformed (8-bit headers, unknown charsets, broken MIME boundaries, RFC 822 group syntax
that trips `email.policy.default`), so parsing uses the lenient `compat32` policy, decodes every header
by hand with replacement characters, and turns every problem into a defect name in
`Envelope.defects` instead of an exception. Only an empty message is refused, by the caller.

Parsing is bounded: Python's email parser recurses once per level of MIME nesting and fails near
1,000 levels, so a part nested deeper than `MAX_MIME_DEPTH` levels is not parsed into parts. Its
body, with all it contains, stays one opaque payload that is neither indexed nor listed as an
attachment, and the message gets the defect `MimeNestingTooDeep`.
"""

from __future__ import annotations

import email.header
import email.utils
import hashlib
import re
from dataclasses import dataclass
from email.message import Message
from email.parser import BytesHeaderParser, BytesParser
from email.policy import compat32

# Full-text indexing stops after this much decoded text per message: search finds words in the
# first megabyte of a message's text, and a 30 MB attachment-free message cannot bloat the index.
MAX_INDEXED_TEXT = 1 << 20
# Parts nested deeper than this (the top-level message is level 0) are not looked into. Real mail
# nests a few levels (a forward of a forward of a signed message is about ten).
MAX_MIME_DEPTH = 100
TOO_DEEP = "MimeNestingTooDeep"
# What a part nested too deeply claims to be, so that the parser keeps its body as one payload.
_OPAQUE = "application/octet-stream"
# The empty line that ends the header block (LF or CRLF line ends).
_HEADER_END = re.compile(rb"\r?\n\r?\n")
_TAG = re.compile(r"<[^>]*>")
_SPACE = re.compile(r"\s+")


@dataclass(frozen=True, slots=True)
class Attachment:
    filename: str
    content_type: str
    size: int


@dataclass(frozen=True, slots=True)
class Envelope:
    """The parsed view of one message: header fields, text for the index, attachments, defects."""

    message_id: str
    subject: str
    from_: str
    to: str
    cc: str
    date: int | None  # seconds since the epoch, from the Date header, when it parses
    in_reply_to: str
    references: str
    attachments: tuple[Attachment, ...]
    text: str
    defects: tuple[str, ...]


class _NestedPart(Message):
    """A message part that knows how deeply it is nested. The parser attaches each part to its
    parent before reading the part's headers, and then asks the part's content type whether to
    parse its body as more parts; a part deeper than `MAX_MIME_DEPTH` answers `_OPAQUE`, so
    parsing, and walking the tree afterwards, go no deeper."""

    depth = 0

    def attach(self, payload: Message | str) -> None:
        if isinstance(payload, _NestedPart):
            payload.depth = self.depth + 1
        super().attach(payload)

    @property
    def too_deep(self) -> bool:
        return self.depth > MAX_MIME_DEPTH

    def get_content_type(self) -> str:
        return _OPAQUE if self.too_deep else super().get_content_type()


_PARSER = BytesParser(_NestedPart, policy=compat32)
_HEADERS = BytesHeaderParser(_NestedPart, policy=compat32)


def content_hash(raw: bytes) -> bytes:
    """The single-instance key of a body: SHA-256 of the raw bytes."""
    return hashlib.sha256(raw).digest()


def parse_envelope(raw: bytes) -> Envelope:
    message = _parse(raw)
    defects: list[str] = [type(d).__name__ for d in message.defects]
    texts: list[str] = []
    attachments: list[Attachment] = []
    for part in message.walk():
        defects.extend(type(d).__name__ for d in part.defects if part is not message)
        if isinstance(part, _NestedPart) and part.too_deep:
            defects.append(TOO_DEEP)
            continue
        if part.is_multipart():
            continue
        _collect_part(part, texts, attachments, defects)
    text = " ".join(texts)[:MAX_INDEXED_TEXT]
    fields = _Fields(message)
    return Envelope(
        message_id=fields.text("Message-ID", defects).strip(),
        subject=fields.text("Subject", defects),
        from_=fields.text("From", defects),
        to=fields.text("To", defects),
        cc=fields.text("Cc", defects),
        date=_date(fields.first("Date"), defects),
        in_reply_to=fields.text("In-Reply-To", defects).strip(),
        references=_SPACE.sub(" ", fields.text("References", defects)).strip(),
        attachments=tuple(attachments),
        text=text,
        defects=tuple(dict.fromkeys(defects)),
    )


def _parse(raw: bytes) -> Message:
    """The message tree. A single-part message takes a short cut: only its header block goes
    through the email parser, which would otherwise split the whole body into lines for nothing;
    its body becomes the payload exactly as the parser would have set it."""
    end = _HEADER_END.search(raw)
    if end is None:
        return _PARSER.parsebytes(raw)
    message = _HEADERS.parsebytes(raw[: end.end()])
    if message.get_content_maintype() in ("multipart", "message") or message.defects:
        return _PARSER.parsebytes(raw)
    message.set_payload(raw[end.end() :].decode("ascii", "surrogateescape"))
    return message


def decode_header_value(value: str | email.header.Header) -> str:
    """A header value as text: RFC 2047 words decoded, raw 8-bit bytes read as UTF-8 or else
    Windows-1252, anything undecodable replaced, folding removed."""
    try:
        pieces = email.header.decode_header(value)
    except Exception:  # the email package raises several unrelated types on bad encoded words
        return _unfold(str(value))
    out = [
        chunk if isinstance(chunk, str) else _decode_bytes(chunk, charset)
        for chunk, charset in pieces
    ]
    return _unfold("".join(out))


class _Fields:
    """A message's header fields by name, read in one pass (`Message.get_all` reads them all for
    every name asked), each value as `get_all` gives it."""

    def __init__(self, message: Message) -> None:
        self._fetch = message.policy.header_fetch_parse
        self._by_name: dict[str, list[tuple[str, str]]] = {}
        for name, value in message.raw_items():
            self._by_name.setdefault(name.lower(), []).append((name, value))

    def first(self, name: str) -> str | email.header.Header | None:
        found = self._by_name.get(name.lower())
        return self._fetch(*found[0]) if found else None

    def text(self, name: str, defects: list[str]) -> str:
        """The first value decoded, noting a repeated field or raw 8-bit bytes in `defects`."""
        found = self._by_name.get(name.lower())
        if not found:
            return ""
        if len(found) > 1:
            defects.append(f"Duplicate{name.replace('-', '')}Header")
        value = self._fetch(*found[0])
        if isinstance(value, email.header.Header):  # compat32 hands back raw 8-bit headers this way
            defects.append("NonAsciiHeader")
        return decode_header_value(value)


def _unfold(value: str) -> str:
    return value.replace("\r", "").replace("\n", "")


def _decode_bytes(data: bytes, charset: str | None) -> str:
    if charset is None or charset == "unknown-8bit":
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            return data.decode("cp1252", errors="replace")
    try:
        return data.decode(charset, errors="replace")
    except LookupError:
        return data.decode("utf-8", errors="replace")


def _date(raw: str | email.header.Header | None, defects: list[str]) -> int | None:
    if raw is None:
        return None
    try:
        parsed = email.utils.parsedate_to_datetime(str(raw))
    except (TypeError, ValueError, IndexError, OverflowError):
        defects.append("InvalidDateHeader")
        return None
    try:
        return int(parsed.timestamp())
    except (OverflowError, ValueError, OSError):
        defects.append("InvalidDateHeader")
        return None


def _collect_part(
    part: Message, texts: list[str], attachments: list[Attachment], defects: list[str]
) -> None:
    content_type = part.get_content_type()
    disposition_field = part.get("Content-Disposition")
    filename = _filename(part, disposition_field)
    disposition = str(disposition_field or "").split(";")[0].strip().lower()
    try:
        payload = part.get_payload(decode=True)
    except Exception:  # malformed transfer encodings raise assorted errors
        defects.append("UndecodablePayload")
        payload = None
    data = payload if isinstance(payload, bytes) else b""
    if filename or disposition == "attachment" or not content_type.startswith("text/"):
        attachments.append(Attachment(filename, content_type, len(data)))
        return
    text = _decode_bytes(data, part.get_content_charset())
    if content_type == "text/html":
        text = _TAG.sub(" ", text)
    texts.append(text)


def _filename(part: Message, disposition: str | email.header.Header | None) -> str:
    if disposition is None and "name" not in str(part.get("Content-Type", "")).lower():
        return ""  # no field can name a file: spare the email package's parsing of parameters
    try:
        name = part.get_filename()
    except Exception:  # bad RFC 2231 parameters
        return ""
    return decode_header_value(name) if name else ""
