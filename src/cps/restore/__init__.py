"""Restoring a database to a transaction, a time or a recovery point, from a repository.

Owns the catalog of what a repository covers (`catalog.py`, from file names alone), the pure
planner (`plan.py`), the parsing of targets (`targets.py`), the reading of a plan's log up to its
end (`log.py`, shared with granular recovery so that both apply exactly the same transactions) and
the careful execution of a plan into a new file (`apply.py`). It reads the repository and never
imports capture.
"""

from .apply import RestoreResult, restore
from .catalog import Catalog, ChainView, load_catalog
from .log import LogUnreadable, read_log
from .plan import RestorePlan, plan_restore
from .targets import Target, format_ms, parse_time

__all__ = [
    "Catalog",
    "ChainView",
    "LogUnreadable",
    "RestorePlan",
    "RestoreResult",
    "Target",
    "format_ms",
    "load_catalog",
    "parse_time",
    "plan_restore",
    "read_log",
    "restore",
]
