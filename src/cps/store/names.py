"""Folder names, folder paths and mailbox addresses: what the store accepts and how it spells them.

A folder path is the names from the mailbox root down, joined with "/" when written as text
("Inbox/Projects/2026"). A name may hold any Unicode except "/", control characters and surrogates;
it may not be empty, ".", "..", longer than 255 UTF-8 bytes, or start or end with white space. Those
rules keep every name safe to turn into a file name on export and unambiguous in a path.
"""

from __future__ import annotations

import unicodedata

from ..errors import InvalidName

SEPARATOR = "/"
MAX_NAME_BYTES = 255
MAX_ADDRESS_LENGTH = 320


def check_folder_name(name: str) -> str:
    """Return `name` normalised to NFC, or raise InvalidName saying what is wrong with it."""
    name = unicodedata.normalize("NFC", name)
    problem = _name_problem(name)
    if problem:
        raise InvalidName(
            f"invalid folder name {name!r}: {problem}",
            hint="Folder names may use any letters, digits, spaces and punctuation except '/'.",
        )
    return name


def split_path(path: str) -> tuple[str, ...]:
    """Split "A/B/C" into checked names; leading and trailing separators are ignored."""
    parts = tuple(p for p in path.strip(SEPARATOR).split(SEPARATOR))
    if parts == ("",):
        raise InvalidName("empty folder path", hint="Name a folder, for example Inbox.")
    return tuple(check_folder_name(p) for p in parts)


def join_path(names: tuple[str, ...] | list[str]) -> str:
    return SEPARATOR.join(names)


def check_address(address: str) -> str:
    """Return a mailbox address in canonical form (trimmed, lowercased) or raise InvalidName."""
    canonical = address.strip().lower()
    local, at, domain = canonical.rpartition("@")
    if (
        not at
        or not local
        or not domain
        or len(canonical) > MAX_ADDRESS_LENGTH
        or any(c.isspace() or _is_control(c) or c in "/<>" for c in canonical)
    ):
        raise InvalidName(
            f"invalid mailbox address {address!r}",
            hint="Give an address such as alice@example.com.",
        )
    return canonical


def split_mailbox_path(text: str) -> tuple[str, tuple[str, ...]]:
    """Split "alice@example.com/Inbox/Projects" into the address and the folder names (maybe none)."""
    address, _, rest = text.partition(SEPARATOR)
    return check_address(address), (split_path(rest) if rest.strip(SEPARATOR) else ())


def _name_problem(name: str) -> str:
    if not name:
        return "it is empty"
    if name in (".", ".."):
        return "'.' and '..' are reserved"
    if SEPARATOR in name:
        return "it contains '/', the folder separator"
    if any(_is_control(c) for c in name):
        return "it contains control characters"
    if name != name.strip():
        return "it starts or ends with white space"
    if len(name.encode("utf-8", errors="surrogatepass")) > MAX_NAME_BYTES:
        return f"it is longer than {MAX_NAME_BYTES} bytes in UTF-8"
    return ""


def _is_control(char: str) -> bool:
    return unicodedata.category(char) in ("Cc", "Cs", "Cf") and char not in "\u200d\u200c"
