"""What the store commands print for people: made safe for a terminal, and counted in words.

Subjects, senders, message texts and file names come from mail, that is from anyone, and a header
can hold escape sequences that retitle a terminal, clear it or move its cursor, or bidirectional
controls that make text read other than it is. Every store command prints its text through `emit`
and `note` here, which show each such character as an escape ("\\x1b", "\\u202e") instead of
sending it. `--json` output (where JSON escapes control characters) and `show --raw` (the message's
bytes, on purpose) are not changed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import output

# C0 and C1 controls but line feed and tab, DEL, bidirectional controls, line/paragraph separators.
_VISIBLE = {
    **{c: f"\\x{c:02x}" for c in (*range(0x20), *range(0x7F, 0xA0)) if chr(c) not in "\n\t"},
    **{c: f"\\u{c:04x}" for c in (0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F),
                                  *range(0x2066, 0x206A), 0x2028, 0x2029)},
}


def terminal_safe(text: str) -> str:
    """`text` with every character that could drive a terminal shown as an escape; CRLF line
    breaks (common in message text) become plain ones first."""
    return text.replace("\r\n", "\n").translate(_VISIBLE)


def emit(data: Any, as_json: bool, render: Callable[[Any], str]) -> None:
    """`output.emit`, with the human-readable text made terminal-safe."""
    output.emit(data, as_json, lambda shown: terminal_safe(render(shown)))


def note(message: str) -> None:
    """`output.note`, made terminal-safe."""
    output.note(terminal_safe(message))


def counted(count: int, singular: str, plural: str = "", *, width: int = 0) -> str:
    """"1 message", "2 messages". In a table (`width` > 0) the number is right-aligned to `width`
    and the word padded to the plural's length, so the columns after it stay in line."""
    plural = plural or singular + "s"
    word = singular if count == 1 else plural
    return f"{count:{width}} {word:{len(plural) if width else 0}}"
