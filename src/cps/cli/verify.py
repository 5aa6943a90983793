"""`cps verify`: checks that say whether what CPS keeps is sound, one command per thing checked."""

from __future__ import annotations

import click

from .lazy import LazyGroup

COMMANDS = {
    "repo": "verify_repo:repo_command",
    "store": "verify_store:store_command",
}


@click.group("verify", cls=LazyGroup, lazy=COMMANDS)
def verify_group() -> None:
    """Check mail databases and backup repositories for damage; repair what a database can."""
