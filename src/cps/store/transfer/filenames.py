"""Folder names as file and directory names, in both directions, so that export never escapes its
destination and import reads back what export wrote.

The store already refuses "/", control characters, "." and ".." in folder names (`names.py`), but a
name can still clash with the layout: a leading "." hides a directory (and starts a Maildir++ folder),
Maildir++ joins levels with ".", and a folder named "1.eml" would collide with a message file. Such
dots are written as "%2E", and "%" itself as "%25"; import decodes exactly these two escapes (a
directory named "100%25" is imported as folder "100%"). A name longer than 255 bytes once encoded
is cut and given a hash suffix, so it stays unique, but it does not read back as the original name.
"""

from __future__ import annotations

import hashlib
import re

MAX_FILE_NAME_BYTES = 255
_HASH_HEX = 16
_ESCAPES = re.compile(r"%(2[eE5])")


def encode_name(name: str, *, all_dots: bool = False, suffix: str = "", reserve: int = 0) -> str:
    """`name` as one directory entry: '%' escaped, a leading '.' escaped, every '.' escaped when
    `all_dots` (Maildir++), and the '.' of a trailing `suffix` (".eml", ".mbox") escaped; short
    enough to leave `reserve` bytes for an extension. '/' and NUL, which the store never lets into
    a name, are escaped too, so no name can reach outside its directory whatever the database
    holds."""
    text = name.replace("%", "%25").replace("/", "%2F").replace("\0", "%00")
    if all_dots:
        text = text.replace(".", "%2E")
    if text.startswith("."):
        text = "%2E" + text[1:]
    if suffix and text.endswith(suffix):
        text = text[: -len(suffix)] + "%2E" + suffix[1:]
    return fit_name(text, reserve=reserve)


def decode_name(text: str) -> str:
    """The folder name an encoded directory entry stands for."""
    return _ESCAPES.sub(lambda match: "." if match.group(1) in ("2e", "2E") else "%", text)


def fit_name(text: str, *, reserve: int = 0) -> str:
    """`text` cut to fit one file name (leaving `reserve` bytes for a suffix), with a hash of the
    whole text appended when it had to be cut."""
    limit = MAX_FILE_NAME_BYTES - reserve
    data = text.encode("utf-8", errors="surrogateescape")
    if len(data) <= limit:
        return text
    digest = hashlib.sha256(data).hexdigest()[:_HASH_HEX]
    head = data[: limit - _HASH_HEX - 1].decode("utf-8", errors="ignore")
    return f"{head}~{digest}"
