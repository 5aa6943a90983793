"""One renderer for everything the CLI prints: results to stdout, diagnostics to stderr.

With `--json`, a command prints exactly one JSON document on stdout. That output is a stable
contract: fields may be added in later versions, and consumers must ignore fields they do not know.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any

import click

from ..errors import CPSError, UsageError


def emit_json(data: Any) -> None:
    click.echo(json.dumps(data, ensure_ascii=False, indent=2, sort_keys=True))


def emit(data: Any, as_json: bool, render: Callable[[Any], str]) -> None:
    """Print `data` as JSON or as the human-readable text `render` makes of it."""
    if as_json:
        emit_json(data)
    else:
        text = render(data)
        if text:
            click.echo(text)


def note(message: str) -> None:
    """A diagnostic for a person: stderr, never mixed into results."""
    click.echo(message, err=True)


def fail(error: CPSError) -> None:
    """Print a user-facing error with its code and hint, and exit with its status."""
    click.echo(f"cps: error [{error.code}]: {error.message}", err=True)
    if error.hint:
        click.echo(f"hint: {error.hint}", err=True)
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
