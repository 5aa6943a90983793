"""The `cps` commands as the tests walk them: every command and subcommand of the click group."""

from __future__ import annotations

import click

from cps.cli import cps


def commands(group: click.Group = cps, prefix: str = "cps") -> list[tuple[str, click.Command]]:
    """Every command below `group` with its full name ("cps store mailbox create"), as click loads
    them."""
    found: list[tuple[str, click.Command]] = []
    context = click.Context(group)
    for name in group.list_commands(context):
        command = group.get_command(context, name)
        assert command is not None and command.name == name, f"{prefix} {name} does not load"
        path = f"{prefix} {name}"
        if isinstance(command, click.Group):
            found += commands(command, path)
        else:
            found.append((path, command))
    return found
