"""`cps store`: the mail store's commands, one module per area, gathered into one group."""

from __future__ import annotations

import click

from . import store_admin


@click.group()
def store() -> None:
    """Create, fill, inspect and serve mail databases."""


for command in store_admin.COMMANDS:
    store.add_command(command)
