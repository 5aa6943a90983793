"""`cps store`: the mail store's commands, one module per area, gathered into one group."""

from __future__ import annotations

import click

from .lazy import LazyGroup

COMMANDS = {
    "create": "store_admin:create_command",
    "mailbox": "store_admin:mailbox_group",
    "folder": "store_admin:folder_group",
    "message": "store_admin:message_group",
    "ls": "store_inspect:ls_command",
    "show": "store_inspect:show_command",
    "stats": "store_inspect:stats_command",
    "dump": "store_inspect:dump_command",
    "serve": "store_serve:serve_command",
    "import": "store_transfer:import_command",
    "export": "store_transfer:export_command",
    "workload": "store_workload:workload_command",
}


@click.group(cls=LazyGroup, lazy=COMMANDS)
def store() -> None:
    """Create, fill, inspect and serve mail databases."""
