"""One renderer for everything the CLI prints: results to stdout, diagnostics to stderr.

With `--json`, a command prints exactly one JSON document on stdout. That output is a stable
contract: fields may be added in later versions, and consumers must ignore fields they do not know.

Text for people is made safe for a terminal here, for every command: subjects, senders, folder
names and message texts come from mail, that is from anyone, and a header can hold escape
sequences that retitle a terminal, clear it or move its cursor, or bidirectional controls that make
text read other than it is. Each such character is shown as an escape ("\\x1b", "\\u202e") instead
of being sent. JSON (where such characters are escaped anyway) and raw bytes asked for on purpose
(`cps store show --raw`) are not changed.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any

import click

from ..errors import CPSError, UsageError

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


def emit_json(data: Any) -> None:
    click.echo(json.dumps(data, ensure_ascii=False, indent=2, sort_keys=True))


def emit(data: Any, as_json: bool, render: Callable[[Any], str]) -> None:
    """Print `data` as JSON or as the human-readable text `render` makes of it."""
    if as_json:
        emit_json(data)
    else:
        text = terminal_safe(render(data))
        if text:
            click.echo(text)


def note(message: str) -> None:
    """A diagnostic for a person: stderr, never mixed into results."""
    click.echo(terminal_safe(message), err=True)


def fail(error: CPSError) -> None:
    """Print a user-facing error with its code and hint, and exit with its status."""
    click.echo(terminal_safe(f"cps: error [{error.code}]: {error.message}"), err=True)
    if error.hint:
        click.echo(terminal_safe(f"hint: {error.hint}"), err=True)
    sys.exit(error.exit_status)


def from_click(error: click.ClickException) -> CPSError:
    """click's own error (a missing argument, an unknown option) as CPS shows every other."""
    if not isinstance(error, click.UsageError):
        return CPSError(_as_message(error.format_message()))
    close = getattr(error, "possibilities", None)  # what an unknown option or command may have meant
    guess = f"Did you mean {' or '.join(close)}? " if close else ""
    context = error.ctx
    where = context.command_path if context else "cps"
    parts = "commands" if context and isinstance(context.command, click.Group) else "options"
    text = error.message if close else error.format_message()  # the guess goes to the hint
    return UsageError(_as_message(text),
                      hint=f"{guess}Run '{where} --help' for its {parts}.")


def _as_message(text: str) -> str:
    """click's sentence as a CPS message: lowercase first letter, no trailing period."""
    text = text.strip().removesuffix(".")
    return text[:1].lower() + text[1:]


json_option = click.option(
    "--json", "as_json", is_flag=True, help="Print one JSON document (a stable contract)."
)


def counted(count: int, singular: str, plural: str = "", *, width: int = 0) -> str:
    """"1 message", "2 messages". In a table (`width` > 0) the number is right-aligned to `width`
    and the word padded to the plural's length, so the columns after it stay in line."""
    plural = plural or singular + "s"
    word = singular if count == 1 else plural
    return f"{count:{width}} {word:{len(plural) if width else 0}}"


def duration(seconds: float) -> str:
    """A length of time the way the config takes one, to its largest unit or two: 45s, 12m,
    3h20m, 6d."""
    whole = int(seconds)
    for size, unit, smaller, small_unit in ((86400, "d", 3600, "h"), (3600, "h", 60, "m"),
                                            (60, "m", 1, "s")):
        if whole >= size:
            rest = (whole % size) // smaller
            return f"{whole // size}{unit}" + (f"{rest}{small_unit}" if rest else "")
    return f"{whole}s"
