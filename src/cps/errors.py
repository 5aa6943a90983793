"""Every error CPS reports to a user, with a stable code and a hint.

The hierarchy::

    CPSError                       code          exit
    ├── UsageError                 usage         2    a request that cannot be carried out as asked
    └── StoreError                 store         3    the mail store refused or failed an operation
        ├── NotAStore              not-a-store   3    the file is not a CPS mail database
        ├── StoreBusy              store-busy    4    another process held the database too long
        ├── NotFound               not-found     5    a mailbox, folder or message does not exist
        ├── AlreadyExists          exists        6    a mailbox or folder of that name exists
        ├── InvalidName            invalid-name  7    a folder name or address that cannot be stored
        └── InvalidMessage         invalid-mail  8    a message that cannot be accepted (empty, too big)

`CPSError` is what a user is shown: a lowercase message without a trailing period, plus an optional
hint written as full sentences. Anything else that escapes is a bug and is shown as one. The codes and
exit statuses are a contract: scripts depend on them, and `docs/errors.md` lists them.
"""

from __future__ import annotations


class CPSError(Exception):
    """An error to show the user; `code` and `exit_status` never change for a given subclass."""

    code = "error"
    exit_status = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class UsageError(CPSError):
    code = "usage"
    exit_status = 2


class StoreError(CPSError):
    code = "store"
    exit_status = 3


class NotAStore(StoreError):
    code = "not-a-store"
    exit_status = 3


class StoreBusy(StoreError):
    code = "store-busy"
    exit_status = 4


class NotFound(StoreError):
    code = "not-found"
    exit_status = 5


class AlreadyExists(StoreError):
    code = "exists"
    exit_status = 6


class InvalidName(StoreError):
    code = "invalid-name"
    exit_status = 7


class InvalidMessage(StoreError):
    code = "invalid-mail"
    exit_status = 8


ALL_ERRORS: tuple[type[CPSError], ...] = (
    CPSError,
    UsageError,
    StoreError,
    NotAStore,
    StoreBusy,
    NotFound,
    AlreadyExists,
    InvalidName,
    InvalidMessage,
)
