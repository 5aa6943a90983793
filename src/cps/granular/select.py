"""Finding folders and messages in a database by what a person types: paths, UIDs, Message-IDs.

A folder selection is a folder with every folder below it, or a whole mailbox. A message selector
is a UID (in a given folder) or a Message-ID header value such as `<abc@host>` (angle brackets may
be left out), looked for in the given folder and its subfolders, else in the whole mailbox. A
Message-ID found more than once is an error that lists where, so the caller can pick by UID.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from ..errors import NotFound, UsageError
from ..store import Folder, MailDatabase, Message

FolderPath = tuple[str, ...]
MAX_UID = 2**63 - 1  # the largest integer SQLite holds: no message has a larger UID


@dataclass(frozen=True, slots=True)
class Located:
    """A message and the folder it is in."""

    folder: Folder
    message: Message


def select_folders(db: MailDatabase, address: str, folder: FolderPath = ()) -> list[Folder]:
    """`folder` and its subfolders in path order, or every folder of the mailbox when `folder` is
    empty. NotFound (naming the nearest matches) when the mailbox or folder does not exist."""
    with db.read():
        folders = db.folders(address)
        if folder:
            db.folder(address, folder)  # the store's error, with its hint, when it is missing
    return [f for f in folders if f.path[: len(folder)] == folder]


def messages_in(db: MailDatabase, address: str, folders: list[Folder]) -> Iterator[Located]:
    """Every message of the folders, folder by folder in UID order."""
    for folder in folders:
        for message in db.messages(address, folder.path):
            yield Located(folder, message)


def select_message(db: MailDatabase, address: str, folder: FolderPath, selector: str) -> Located:
    """The one message `selector` names (see the module docstring)."""
    text = selector.strip()
    if text.isdecimal():  # isdigit() admits "²", which int() refuses
        if not folder:
            raise UsageError(f"UID {text} needs a folder",
                             hint="Name the folder (MAILBOX/FOLDER, or --folder), or select the "
                                  "message by its Message-ID.")
        # SQLite could not even be asked about it (and int() refuses over 4300 digits)
        if len(text.lstrip("0")) > len(str(MAX_UID)) or int(text) > MAX_UID:
            shown = text if len(text) <= 40 else f"{text[:40]}... ({len(text)} digits)"
            raise UsageError(f"UID {shown} is larger than any UID can be",
                             hint="Give a UID as the folder's listing shows it.")
        with db.read():
            return Located(db.folder(address, folder), db.message_by_uid(address, folder, int(text)))
    message_id = _message_id(text)
    with db.read():
        found = [hit for hit in messages_in(db, address, select_folders(db, address, folder))
                 if _bare(hit.message.message_id) == _bare(message_id)]
    where = f"{address}/{'/'.join(folder)}" if folder else address
    if not found:
        raise NotFound(f"no message with Message-ID {message_id} in {where}",
                       hint="Search for it with 'cps search', which shows folders and UIDs.")
    if len(found) > 1:
        places = "; ".join(f"{hit.folder.path_text} UID {hit.message.uid}" for hit in found[:10])
        raise UsageError(f"{len(found)} messages in {where} have Message-ID {message_id}",
                         hint=f"Select one by folder and UID: {places}.")
    return found[0]


def _message_id(text: str) -> str:
    if "@" not in text and not (text.startswith("<") and text.endswith(">")):
        raise UsageError(f"cannot read {text!r} as a UID or a Message-ID",
                         hint="Give a UID such as 42, or a Message-ID such as '<abc@host>'.")
    return f"<{_bare(text)}>"


def _bare(message_id: str) -> str:
    return message_id.strip().removeprefix("<").removesuffix(">").strip()
