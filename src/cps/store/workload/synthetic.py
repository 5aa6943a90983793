"""Generated mail for the workload: plausible, varied messages that are the same bytes for the same seed.

A message has the headers a real client writes (From, To, sometimes Cc, Subject, Date, Message-ID,
MIME-Version, User-Agent, In-Reply-To and References on replies), a greeting, one to five wrapped
paragraphs and a signature; about one in eight carries an attachment (multipart/mixed, base64, some
with RFC 2231 non-ASCII file names). Subjects and names are sometimes non-ASCII (RFC 2047 encoded),
bodies are UTF-8. Lines end in CRLF.

Everything comes from the `random.Random` the caller passes, never from the clock: Date headers walk
forward from a fixed start by random gaps, and MIME boundaries are drawn from the same generator
(`email.generator` would draw them from the global one), so a seed fixes every byte.
"""

from __future__ import annotations

import base64
import email.header
import email.utils
import random
import textwrap
import unicodedata
import urllib.parse
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta, timezone

ATTACHMENT_SHARE = 0.12
REPLY_SHARE = 0.25
CC_SHARE = 0.2

_START = datetime(2026, 1, 5, 8, 0, 0, tzinfo=UTC)
_MEAN_GAP_SECONDS = 97.0
_ZONES = tuple(timezone(timedelta(hours=h)) for h in (0, 1, -5, -8, 9, 5.5))

_FIRST = ("Anna", "Bernd", "Chloé", "David", "Elif", "François", "Grace", "Hiroshi", "Ines", "Jürgen",
          "Kateryna", "Liam", "Mónica", "Nikolai", "Olga", "Priya", "Quentin", "Rosa", "Søren",
          "Tomás", "Uma", "Viktor", "Wei", "Zoë")
_LAST = ("Schneider", "Okafor", "Dubois", "Nakamura", "Kowalski", "García", "Lindqvist", "Patel",
         "O'Brien", "Rossi", "Müller", "Ivanova", "Chen", "Haddad", "Novák", "Smith")
_DOMAINS = ("example.org", "example.net", "mail.example.com", "partner.example", "lists.example.org")
_AGENTS = ("Mozilla Thunderbird 128.4", "Microsoft Outlook 16.0", "Apple Mail (2.3774)",
           "Roundcube Webmail/1.6.9", "K-9 Mail for Android", "mutt/2.2.13")
_TOPICS = ("quarterly report", "budget review", "project kickoff", "server migration",
           "travel plans", "contract draft", "team offsite", "release notes", "invoice 4711",
           "hiring update", "customer feedback", "security audit", "Umzug ins neue Büro",
           "réunion de lundi", "データ移行の件", "план на неделю", "Ποσοστά πωλήσεων")
_SUBJECT_FORMS = ("{t}", "Re: {t}", "Fwd: {t}", "{t} – next steps", "Question about the {t}",
                  "[team] {t}", "Reminder: {t}", "{t} (updated)")
_WORDS = ("the", "we", "a", "to", "and", "of", "for", "this", "that", "is", "will", "on", "with",
          "please", "review", "attached", "schedule", "meeting", "numbers", "draft", "customer",
          "deadline", "budget", "report", "team", "next", "week", "update", "server", "backup",
          "restore", "agreed", "proposal", "figures", "changes", "comments", "call", "Monday",
          "Friday", "office", "contract", "version", "final", "question", "project", "invoice",
          "shipment", "delay", "approval", "quickly", "probably", "already", "soon", "again",
          "café", "Grüße", "naïve", "Zürich", "façade", "déjà vu", "smörgåsbord", "日本", "€120")
_ATTACHMENTS = (("report.pdf", "application/pdf"), ("figures.csv", "text/csv"),
                ("photo.jpg", "image/jpeg"), ("notes.txt", "text/plain"),
                ("Präsentation.pptx",
                 "application/vnd.openxmlformats-officedocument.presentationml.presentation"),
                ("budget-2026.xlsx",
                 "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
                ("合同.docx",
                 "application/vnd.openxmlformats-officedocument.wordprocessingml.document"))


class MessageFactory:
    """Composes messages from one random generator; every call moves the Date clock forward."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.clock = _START

    def compose(self, sender: str | None, recipients: Sequence[str] | None) -> bytes:
        """A message from `sender` to `recipients` (addresses); None stands for outside people."""
        rng = self.rng
        self.clock += timedelta(seconds=rng.expovariate(1 / _MEAN_GAP_SECONDS))
        from_name, from_address = self._person() if sender is None else (_name_of(sender), sender)
        to = [self._person()] if recipients is None else [(_name_of(a), a) for a in recipients]
        headers = [
            ("From", _address(from_name, from_address)),
            ("To", ", ".join(_address(name, address) for name, address in to)),
        ]
        if rng.random() < CC_SHARE:
            headers.append(("Cc", _address(*self._person())))
        topic = rng.choice(_TOPICS)
        headers += [
            ("Subject", _encode_header(rng.choice(_SUBJECT_FORMS).format(t=topic))),
            ("Date", email.utils.format_datetime(self.clock.astimezone(rng.choice(_ZONES)))),
            ("Message-ID", self._message_id(from_address)),
            ("MIME-Version", "1.0"),
            ("User-Agent", rng.choice(_AGENTS)),
        ]
        if rng.random() < REPLY_SHARE:
            parent = self._message_id(rng.choice(_DOMAINS))
            headers += [("In-Reply-To", parent), ("References", parent)]
        text = self._text(to[0][0], from_name)
        if rng.random() < ATTACHMENT_SHARE:
            return _join(headers, self._with_attachment(text))
        return _join(headers, _text_part(text))

    def _person(self) -> tuple[str, str]:
        first, last = self.rng.choice(_FIRST), self.rng.choice(_LAST)
        spelt = unicodedata.normalize("NFKD", f"{first}.{last}".lower().replace("'", ""))
        local = spelt.encode("ascii", "ignore").decode()
        return f"{first} {last}", f"{local}@{self.rng.choice(_DOMAINS)}"

    def _message_id(self, address: str) -> str:
        domain = address.rpartition("@")[2] or address
        return f"<{self.clock:%Y%m%d%H%M%S}.{self.rng.getrandbits(64):016x}@{domain}>"

    def _text(self, to_name: str, from_name: str) -> str:
        rng = self.rng
        paragraphs = [f"Hi {to_name.split()[0]},"]
        for _ in range(rng.randint(1, 5)):
            sentences = [self._sentence() for _ in range(rng.randint(2, 6))]
            paragraphs.append(textwrap.fill(" ".join(sentences), width=72))
        paragraphs.append(f"Best regards,\n{from_name}")
        return "\n\n".join(paragraphs) + "\n"

    def _sentence(self) -> str:
        words = [self.rng.choice(_WORDS) for _ in range(self.rng.randint(5, 16))]
        sentence = " ".join(words)
        return sentence[0].upper() + sentence[1:] + self.rng.choice(".....?!")

    def _with_attachment(self, text: str) -> list[str]:
        rng = self.rng
        boundary = f"=_part_{rng.getrandbits(64):016x}"
        filename, content_type = rng.choice(_ATTACHMENTS)
        size = min(int(rng.lognormvariate(9.5, 1.0)), 512 * 1024)
        data = rng.randbytes(size)
        return [
            f'Content-Type: multipart/mixed; boundary="{boundary}"', "",
            "This is a multi-part message in MIME format.", "",
            f"--{boundary}", *_text_part(text), "",
            f"--{boundary}",
            f"Content-Type: {content_type}; {_file_parameter('name', filename)}",
            "Content-Transfer-Encoding: base64",
            f"Content-Disposition: attachment; {_file_parameter('filename', filename)}", "",
            *base64.encodebytes(data).decode("ascii").splitlines(), "",
            f"--{boundary}--", "",
        ]


def _text_part(text: str) -> list[str]:
    ascii_only = text.isascii()
    return [
        f"Content-Type: text/plain; charset={'us-ascii' if ascii_only else 'utf-8'}",
        f"Content-Transfer-Encoding: {'7bit' if ascii_only else '8bit'}", "",
        *text.splitlines(),
    ]


def _join(headers: list[tuple[str, str]], content: list[str]) -> bytes:
    """Headers, then the content lines (its own header lines first), CRLF throughout."""
    lines = [f"{name}: {value}" for name, value in headers] + content
    return ("\r\n".join(lines) + "\r\n").encode("utf-8")


def _name_of(address: str) -> str:
    local = address.partition("@")[0]
    return local.replace(".", " ").title()


def _address(name: str, address: str) -> str:
    return email.utils.formataddr((name, address), charset="utf-8")


def _encode_header(value: str) -> str:
    return value if value.isascii() else email.header.Header(value, "utf-8").encode(linesep="\r\n")


def _file_parameter(name: str, filename: str) -> str:
    if filename.isascii():
        return f'{name}="{filename}"'
    return f"{name}*=utf-8''{urllib.parse.quote(filename)}"
