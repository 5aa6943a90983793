"""The delivery writer of the protection benchmark: one corpus message per transaction, timed.

Run as its own process (so that nothing else in the benchmark opens the database):

    python bench/writer.py DB --count N [--rate R] [--mark-at K --mark-pause S] [--fast]
                           [--record FILE] [--corpus DIR]

Each delivery is one `MailDatabase.deliver` of a corpus message (the whole enron/ tree by default,
read into memory first) to bench@example.com, in its own transaction. A line `X-CPS-Bench: <n>` is
put in front of each message so that every delivery stores a new body: the database grows by the
whole message each time, as it does for real mail, instead of finding the body already stored.

With `--record FILE` it writes one JSON document: the time each commit returned (Unix seconds),
the WAL position of that commit read from the wal-index header right after it (salts as in the WAL
header, and mxFrame, the frame count after the commit), and, with `--mark-at K`, a fingerprint of
the mail tables after commit K and the middle of a pause of `--mark-pause` seconds that follows it
(a quiet instant to restore to), plus a fingerprint at the end. `--fast` turns synchronous off for
building big databases quickly; measurements never use it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sqlite3
import sys
import time
from pathlib import Path

from cps.store import MailDatabase

RECIPIENT = "bench@example.com"
CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "corpus" / "enron"
WAL_INDEX_HEADER = 48  # the first copy of the wal-index header in the -shm file


def load_corpus(root: Path) -> list[bytes]:
    messages = []
    for folder, _subfolders, files in sorted(os.walk(root)):
        for name in sorted(files):
            data = (Path(folder) / name).read_bytes()
            if data.strip():
                messages.append(data)
    if not messages:
        sys.exit(f"no messages under {root}")
    return messages


def fingerprint(connection: sqlite3.Connection) -> dict[str, object]:
    """Counts and a SHA-256 over the mail tables, read in a fixed order: equal for two databases
    that hold the same mail after the same transactions, whatever their physical layout."""
    digest = hashlib.sha256()
    counts = {}
    queries = {
        "folders": "SELECT id, mailbox_id, parent_id, name, uidnext FROM folders ORDER BY id",
        "bodies": "SELECT id, sha256 FROM bodies ORDER BY id",
        "messages": "SELECT id, folder_id, uid, body_id, flags, keywords FROM messages ORDER BY id",
    }
    for table, query in queries.items():
        rows = 0
        for row in connection.execute(query):
            digest.update(repr(row).encode())
            rows += 1
        counts[table] = rows
    return {"counts": counts, "sha256": digest.hexdigest()}


def wal_position(shm: int) -> tuple[int, int, int]:
    """(salt-1, salt-2, mxFrame) from the wal-index header; salts as the WAL header stores them."""
    header = os.pread(shm, WAL_INDEX_HEADER, 0)
    mx_frame = int.from_bytes(header[16:20], sys.byteorder)
    return (int.from_bytes(header[32:36], "big"), int.from_bytes(header[36:40], "big"), mx_frame)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("db", type=Path)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--first", type=int, default=0, help="number of the first delivery")
    parser.add_argument("--rate", type=float, help="deliveries a second (default: flat out)")
    parser.add_argument("--mark-at", type=int, help="pause after this many deliveries")
    parser.add_argument("--mark-pause", type=float, default=3.0)
    parser.add_argument("--record", type=Path)
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    parser.add_argument("--fast", action="store_true", help="synchronous=OFF (building only)")
    args = parser.parse_args()

    corpus = load_corpus(args.corpus)
    database = MailDatabase.open(args.db)
    if args.fast:
        database.connection.execute("PRAGMA synchronous=OFF")
    # Opened once and closed only after the database: closing any descriptor of the -shm file
    # would drop this process's SQLite locks on it.
    shm = os.open(f"{args.db}-shm", os.O_RDONLY) if args.record else -1
    commits: list[float] = []
    positions: list[tuple[int, int, int]] = []
    record: dict[str, object] = {}
    started = time.monotonic()
    for n in range(args.count):
        if args.rate:
            delay = started + n / args.rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        number = args.first + n
        raw = f"X-CPS-Bench: {number}\r\n".encode() + corpus[number % len(corpus)]
        database.deliver(raw, [RECIPIENT])
        if shm >= 0:
            commits.append(time.time())
            positions.append(wal_position(shm))
        if args.mark_at is not None and n + 1 == args.mark_at:
            paused = time.monotonic()
            mark = {"after": n + 1, **fingerprint(database.connection)}
            mark["time"] = time.time() + args.mark_pause / 2
            record["mark"] = mark
            time.sleep(args.mark_pause)
            started += time.monotonic() - paused
    elapsed = time.monotonic() - started
    if args.record:
        record.update(count=args.count, elapsed=elapsed, commits=commits, positions=positions,
                      end=fingerprint(database.connection))
    database.close()
    if shm >= 0:
        os.close(shm)
    if args.record:
        args.record.write_text(json.dumps(record))
    print(json.dumps({"count": args.count, "elapsed": round(elapsed, 3),
                      "per_second": round(args.count / elapsed, 2)}))


if __name__ == "__main__":
    main()
