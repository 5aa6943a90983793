"""`cps verify`: checks that say whether what CPS keeps is sound, one command per thing checked."""

from __future__ import annotations

import click

from .lazy import LazyGroup

COMMANDS = {
    "store": "verify_store:store_command",
}


@click.group("verify", cls=LazyGroup, lazy=COMMANDS)
def verify_group() -> None:
    """Check mail databases for damage, and repair what can be repaired."""
