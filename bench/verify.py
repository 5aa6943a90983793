"""`cps verify store` on the ~1 GB mail store of bench/granular.py, against a plain
`PRAGMA integrity_check` in the same run.

    python bench/verify.py [--db /tmp/cps-bench-granular/mail.db] [--rounds 3] [--json FILE]

The database is copied into a temporary folder first; the original is only read. Each round, on a
warm page cache, in this order: SQLite's `PRAGMA integrity_check` on a read-only connection (the
physical check alone); `check_store` (everything `cps verify store` does, without interpreter
start-up); `check_store(quick=True)`; and `cps verify store` as a process (wall time). Every
check must find the store clean, or the run fails.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from common import granular_arguments, machine, spread
from cps.verify import check_store


def copy_closed(source: Path, target: Path) -> None:
    """Copy a database whose WAL holds nothing (absent, or empty after the last close)."""
    wal = Path(f"{source}-wal")
    if wal.exists() and wal.stat().st_size:
        raise RuntimeError(f"{source} has transactions in its WAL: close every connection first")
    shutil.copyfile(source, target)


def integrity_check(path: Path) -> None:
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        assert connection.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    finally:
        connection.close()


def verify_library(path: Path, *, quick: bool) -> None:
    report = check_store(path, quick=quick)
    assert report.clean and not report.unchecked, report.findings


def verify_command(path: Path) -> None:
    subprocess.run([sys.executable, "-m", "cps", "verify", "store", str(path)], check=True,
                   capture_output=True)


def timed(action: Callable[[], None]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def main() -> None:
    args = granular_arguments(__doc__.splitlines()[0], "db", Path("/tmp/cps-bench-granular/mail.db"))
    with tempfile.TemporaryDirectory(dir=args.db.parent.parent) as folder:
        path = Path(folder) / "mail.db"
        copy_closed(args.db, path)
        measures: dict[str, Callable[[], None]] = {
            "integrity_check": lambda: integrity_check(path),
            "verify": lambda: verify_library(path, quick=False),
            "verify --quick": lambda: verify_library(path, quick=True),
            "cps verify store": lambda: verify_command(path),
        }
        integrity_check(path)  # warms the page cache
        seconds: dict[str, list[float]] = {name: [] for name in measures}
        for _ in range(args.rounds):
            for name, action in measures.items():
                seconds[name].append(timed(action))
        result: dict[str, Any] = {"machine": machine(Path(folder)), "bytes": path.stat().st_size,
                                  "seconds": {name: spread(v) for name, v in seconds.items()}}
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
