"""The granular-recovery commands, gathered: `cps browse | show | search` (granular_browse.py) and
`cps diff | recover` (granular_recover.py)."""

from __future__ import annotations

import click

from . import granular_browse, granular_recover

COMMANDS: list[click.Command] = [*granular_browse.COMMANDS, *granular_recover.COMMANDS]
