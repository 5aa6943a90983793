"""A message as the console previews it: a few headers, the text, the HTML made harmless.

HTML mail is hostile until proven otherwise. Its HTML part is cleaned (nh3: no scripts, no event
handlers, no styles, no `javascript:` links, no remote or inline images, which would tell the
sender the mail was read), then shown in an iframe that is sandboxed (no scripts, its own
origin) and served with a Content-Security-Policy that loads nothing at all: three fences, any
one of which keeps the console safe.
"""

from __future__ import annotations

import email
import email.policy
from dataclasses import dataclass
from email.message import EmailMessage

import nh3

from ...granular import MessageView
from ...store.parse import decode_header_value

SHOWN_HEADERS = ("From", "To", "Cc", "Reply-To", "Date", "Subject", "Message-ID")
MOST_HEADER_CHARS = 2000  # of one header's value: a 1 MB header must not make a 1 MB page
MOST_TEXT_CHARS = 500_000  # of the text shown; the whole message is a download away


@dataclass(frozen=True, slots=True)
class Preview:
    headers: list[tuple[str, str]]
    text: str
    text_cut: int  # characters not shown
    has_html: bool


def preview(view: MessageView) -> Preview:
    parsed = _parse(view.raw)
    headers = [(name, _shortened(decode_header_value(value)))
               for name in SHOWN_HEADERS for value in (parsed.get_all(name) or [])]
    text = view.text or ""
    return Preview(headers, text[:MOST_TEXT_CHARS], max(0, len(text) - MOST_TEXT_CHARS),
                   _html_of(parsed) is not None)


def html_part(raw: bytes) -> str | None:
    """The message's HTML body as text, or None when it has none (or none that can be read)."""
    return _html_of(_parse(raw))


def _html_of(parsed: EmailMessage) -> str | None:
    try:
        body = parsed.get_body(preferencelist=("html",))
        return body.get_content() if body is not None else None
    except (LookupError, ValueError, AttributeError):  # an unknown charset, a broken part
        return None


def cleaned(html: str) -> str:
    """`html` with nothing left that runs, loads or styles."""
    return nh3.clean(html, url_schemes={"http", "https", "mailto"}, url_relative="deny",
                     attribute_filter=_no_image_sources)


def _no_image_sources(tag: str, attribute: str, value: str) -> str | None:
    return None if tag == "img" and attribute == "src" else value


def _parse(raw: bytes) -> EmailMessage:
    return email.message_from_bytes(raw, policy=email.policy.default)


def _shortened(value: str) -> str:
    if len(value) <= MOST_HEADER_CHARS:
        return value
    return f"{value[:MOST_HEADER_CHARS]} … ({len(value) - MOST_HEADER_CHARS:,} more characters)"
