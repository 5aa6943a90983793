"""The database's own commit clock: when each captured transaction committed.

Capture sees a transaction a few milliseconds after it commits, and under a stream of commits it
sees several at each poll: the time it saw them says only roughly when each committed. A database
may keep a commit clock instead, a one-row table that every write transaction sets, as its last
write, to the time it commits (CPS's mail store does; docs/store.md):

    CREATE TABLE cps_commit_clock (id INTEGER PRIMARY KEY CHECK (id = 1),
                                   tag TEXT NOT NULL CHECK (tag = 'cps-commit-clock'),
                                   committed_at INTEGER NOT NULL)   -- µs since the epoch

set with `committed_at = max(committed_at + 1, now in µs)`: strictly increasing, so every
transaction writes the row's page (SQLite does not write a page whose bytes do not change), and,
at a microsecond a step, never ahead of the time under any real stream of commits.

The row is tiny, so its table is one leaf page, which every such transaction writes. Capture finds
that page among the transaction's pages by its content, not by looking up the schema: a table
b-tree leaf (SQLite file format, section 1.6) with exactly one cell, row id 1, whose record is
(NULL, the tag as TEXT, an integer), the integer being the commit time. No other table of the mail
store has that shape, and the tag rules out a look-alike by chance. The repository keeps the commit
time in milliseconds, like every time in it. A value later than the time capture saw the
transaction (beyond CLOCK_TOLERANCE_MS), or before EARLIEST_MS, cannot be a commit time in
microseconds and is ignored.
A transaction that did not set the clock (written by another program) keeps the time capture saw
it: its `committed_at` is 0. So does one that wrote the clock's page unchanged (a VACUUM rewrites
every page): the clock always moves when it is set.
"""

from __future__ import annotations

from collections.abc import Sequence

CLOCK_TAG = b"cps-commit-clock"
CLOCK_TOLERANCE_MS = 1000  # a commit time may not be later than when capture saw it, by more
EARLIEST_MS = 10**12  # 2001-09-09: an earlier value is no commit time in microseconds
LEAF_TABLE_PAGE = 0x0D
_TEXT_TYPE = 13 + 2 * len(CLOCK_TAG)  # the serial type of a TEXT of the tag's length
_INT_SIZES = {1: 1, 2: 2, 3: 3, 4: 4, 5: 6, 6: 8}  # serial type -> bytes of a big-endian integer


class CommitClock:
    """Reads commit times from transactions' pages, remembering which page held the clock."""

    def __init__(self) -> None:
        self.page: int | None = None  # where the clock was last found
        self.value: int | None = None  # what it held there (µs)

    def committed_at(self, pages: Sequence[tuple[int, bytes]], seen_at: int) -> int:
        """The commit time the transaction set, in ms, or 0 when it set none. A transaction that
        wrote the clock's page with the value it had (a VACUUM rewrites every page) set none."""
        value = self._read(dict(pages))  # the last image of a page is the committed one
        if value is None or value == self.value:
            return 0
        self.value = value
        return _plausible(value, seen_at)

    def _read(self, images: dict[int, bytes]) -> int | None:
        if self.page in images:
            value = read_clock(self.page, images[self.page])
            if value is not None:
                return value
        for number, image in images.items():
            value = read_clock(number, image) if number != self.page else None
            if value is not None:
                self.page = number  # moved: a VACUUM renumbers pages
                return value
        return None


def _plausible(microseconds: int, seen_at: int) -> int:
    value = microseconds // 1000
    return value if EARLIEST_MS <= value <= seen_at + CLOCK_TOLERANCE_MS else 0


def read_clock(number: int, page: bytes) -> int | None:
    """The commit time in `page` (page number `number`) when it is the clock's page, else None."""
    start = 100 if number == 1 else 0  # page 1 begins with the database header
    if len(page) < start + 12 or page[start] != LEAF_TABLE_PAGE:
        return None
    if int.from_bytes(page[start + 3 : start + 5], "big") != 1:
        return None
    try:
        cell = int.from_bytes(page[start + 8 : start + 10], "big")
        payload_size, at = _varint(page, cell)
        rowid, at = _varint(page, at)
        if rowid != 1 or payload_size > 64 or at + payload_size > len(page):
            return None
        return _clock_value(page[at : at + payload_size])
    except IndexError:
        return None


def _clock_value(record: bytes) -> int | None:
    header_size, at = _varint(record, 0)
    types = []
    while at < header_size:
        serial, at = _varint(record, at)
        types.append(serial)
    if len(types) != 3 or types[0] != 0 or types[1] != _TEXT_TYPE:
        return None
    body = record[header_size:]
    if body[: len(CLOCK_TAG)] != CLOCK_TAG:
        return None
    value = body[len(CLOCK_TAG) :]
    if types[2] in (8, 9):  # the constants 0 and 1
        return types[2] - 8
    size = _INT_SIZES.get(types[2])
    if size is None or len(value) != size:
        return None
    return int.from_bytes(value, "big", signed=True)


def _varint(data: bytes, at: int) -> tuple[int, int]:
    """SQLite's variable-length integer at `at`: its value and the offset after it."""
    value = 0
    for index in range(8):
        byte = data[at + index]
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            return value, at + index + 1
    return (value << 8) | data[at + 8], at + 9
