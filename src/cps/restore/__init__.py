"""Restoring a database to a transaction, a time or a recovery point, from a repository.

Plans a target against the catalog of what a repository proves (`cps.repository.catalog`,
re-exported here) with a pure planner (`plan.py`); waits for a running protector when a time is
just past what it has made durable (`resolve.py`); parses targets (`targets.py`); reads a plan's
log up to its end (`log.py`, shared with granular recovery so that both apply exactly the same
transactions); picks the nearest full backup that can be read (`bases.py`); carries a plan out
carefully into a new file (`apply.py`); builds the timeline (`timeline.py`); and keeps a standby
copy replayed from the repository, promoted on demand (`standby.py`). It reads the repository and
never imports capture.
"""

from ..repository.catalog import Catalog, ChainView, Hole, Span, load_catalog
from .apply import RestoreResult, install_database, refuse_existing, restore
from .bases import from_nearest_readable
from .log import LogUnreadable, read_log
from .plan import Base, RestorePlan, plan_restore
from .resolve import resolve
from .targets import Target, format_ms, parse_time
from .timeline import ProtectorView, Timeline, build_timeline, upload_json

__all__ = [
    "Base",
    "Catalog",
    "ChainView",
    "Hole",
    "LogUnreadable",
    "ProtectorView",
    "RestorePlan",
    "RestoreResult",
    "Span",
    "Target",
    "Timeline",
    "build_timeline",
    "upload_json",
    "format_ms",
    "from_nearest_readable",
    "install_database",
    "load_catalog",
    "parse_time",
    "plan_restore",
    "read_log",
    "refuse_existing",
    "resolve",
    "restore",
]
