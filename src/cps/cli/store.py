"""`cps store`: the mail store's commands, one module per area, gathered into one group."""

from __future__ import annotations

import click

from . import store_admin, store_serve, store_transfer, store_workload


@click.group()
def store() -> None:
    """Create, fill, inspect and serve mail databases."""


for command in (
    store_admin.COMMANDS + store_serve.COMMANDS + store_workload.COMMANDS + store_transfer.COMMANDS
):
    store.add_command(command)
