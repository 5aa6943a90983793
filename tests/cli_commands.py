"""The `cps` commands as the tests walk them: every command and subcommand of the click group, the
parameters of each that take a path, and a command line made from parameter values."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import click

from cps.cli import cps

Value = str | Path | bool | tuple[str | Path, ...]


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


def takes_a_path(param: click.Parameter) -> bool:
    """Whether the parameter's value is, or holds, a file system path."""
    kinds = param.type.types if isinstance(param.type, click.Tuple) else [param.type]
    return any(isinstance(kind, click.Path) for kind in kinds)


def with_path(param: click.Parameter, value: Value, path: Path) -> Value:
    """`value` of `param` with its path replaced by `path` (inside a tuple such as FORMAT DIR)."""
    if not isinstance(param.type, click.Tuple):
        return path
    assert isinstance(value, tuple), f"{param.name} takes several values"
    return tuple(path if isinstance(kind, click.Path) else part
                 for kind, part in zip(param.type.types, value, strict=True))


def command_line(command: click.Command, values: Mapping[str, Value]) -> list[str]:
    """The arguments that give each named parameter its value, in the command's own order."""
    unknown = set(values) - {param.name for param in command.params}
    assert not unknown, f"{command.name} has no parameters {sorted(unknown)}"
    line: list[str] = []
    for param in command.params:
        if param.name not in values:
            continue
        value = values[param.name]
        parts = [str(v) for v in (value if isinstance(value, tuple) else (value,))]
        if isinstance(param, click.Argument):
            line += parts
        elif value is True:
            line.append(param.opts[0])
        else:
            line += [param.opts[0], *parts]
    return line
