"""The mail store (the "information store"): mail databases, their mailboxes, folders and messages.

Owns the SQLite schema of a mail database and the only code that writes it: `MailDatabase` is the API
the rest of CPS uses. Intake (SMTP/LMTP) lives in `intake/`, import and export in `transfer/`.
The store knows nothing of backups.
"""

from .database import AppendItem, GroupItem, MailDatabase, parse_message
from .models import Delivery, Folder, Mailbox, Message, Stats
from .queries import SearchQuery
from .repair import StoreRepair

__all__ = [
    "AppendItem",
    "GroupItem",
    "Delivery",
    "Folder",
    "MailDatabase",
    "Mailbox",
    "Message",
    "SearchQuery",
    "Stats",
    "StoreRepair",
    "parse_message",
]
