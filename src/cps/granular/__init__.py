"""Granular recovery: browse, show, search, compare and recover mail as it was at any point in time.

Owns making a point browsable without restoring it (`snapshots.py`: the database at that exact
transaction, opened read-only through a SQLite VFS, `vfs.py`, that reads its pages from the
repository, `images.py`), and the questions asked of it through the store's own API:
listings and single messages (`browse.py`), full-text search with the index of that moment
(`search.py`), what changed between two points or a point and now (`diff.py`), and putting
messages, folders or mailboxes back into the live store (`recover.py`; export is the store's
`export_mail` run on the snapshot). It uses
the store, the repository and restore through their public names, and never imports capture.
"""

from .browse import MailboxSummary, MessageView, folder_tree, mailboxes, show_message
from .diff import Diff, diff_databases
from .points import parse_point, point_label, point_target
from .recover import RecoverReport, RecoverRequest, recover_into, select_recovery
from .search import SearchHit, search
from .snapshots import Snapshot, open_snapshot

__all__ = [
    "Diff",
    "MailboxSummary",
    "MessageView",
    "RecoverReport",
    "RecoverRequest",
    "SearchHit",
    "Snapshot",
    "diff_databases",
    "folder_tree",
    "mailboxes",
    "open_snapshot",
    "parse_point",
    "point_label",
    "point_target",
    "recover_into",
    "search",
    "select_recovery",
    "show_message",
]
