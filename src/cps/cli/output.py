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

from ..errors import CPSError


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


json_option = click.option(
    "--json", "as_json", is_flag=True, help="Print one JSON document (a stable contract)."
)
