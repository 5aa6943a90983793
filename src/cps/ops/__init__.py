"""The application layer: what CPS does, for the command line and the server alike.

Each operation here takes parsed values (paths, targets, options, a passphrase already read) and
returns a typed result; it owns the order of the steps (locks, planning, the work, the checks) so
that `cps ... ` and the HTTP API do exactly the same thing. It never parses command lines, prints
or renders: the CLI (`cli/`) and the server (`server/`) do that.
"""

from .points import PointMade, create_point, set_keep
from .protection import protect
from .restores import RestoreDone, check_restorable, restore_database
from .timelines import timelines

__all__ = [
    "PointMade",
    "RestoreDone",
    "check_restorable",
    "create_point",
    "protect",
    "restore_database",
    "set_keep",
    "timelines",
]
