"""Helpers shared by the protection benchmark's parts: statistics, the machine, the page cache, the
test databases and the workload generator run as a child process."""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import sqlite3
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cps.store import MailDatabase

REPOSITORY = Path(__file__).resolve().parents[1]
CORPUS = REPOSITORY.parent / "shared" / "corpus"
WORKLOAD_CORPUS = CORPUS / "enron" / "allen-p"
WRITER = Path(__file__).resolve().parent / "writer.py"
RECIPIENT = "bench@example.com"


def spread(values: Sequence[float], digits: int = 3) -> dict[str, Any]:
    """Median, min and max (and the values) of a measurement over the rounds."""
    if not values:
        return {"median": None, "min": None, "max": None, "n": 0}
    return {"median": round(statistics.median(values), digits), "min": round(min(values), digits),
            "max": round(max(values), digits), "n": len(values),
            "values": [round(v, digits) for v in values]}


def percentile(values: Sequence[float], share: float) -> float:
    """Nearest-rank percentile (share in 0..1)."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(-(-share * len(ordered) // 1))))
    return ordered[rank - 1]


def terminate(process: subprocess.Popen[Any], seconds: float) -> None:
    """SIGTERM `process` and give it `seconds` to end; then SIGKILL it. Either way it has ended."""
    process.terminate()
    try:
        process.wait(seconds)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def machine(workdir: Path) -> dict[str, Any]:
    cpu = re.search(r"^model name\s*:\s*(.*)$", Path("/proc/cpuinfo").read_text(), re.MULTILINE)
    memory = re.search(r"^MemTotal:\s*(\d+) kB", Path("/proc/meminfo").read_text(), re.MULTILINE)
    device = subprocess.run(["df", "--output=source,fstype", str(workdir)], capture_output=True,
                            text=True).stdout.splitlines()[-1].split()
    commit = subprocess.run(["git", "-C", str(REPOSITORY), "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", str(REPOSITORY), "status", "--porcelain", "src"],
                           capture_output=True, text=True).stdout.strip()
    from protectors import litestream_version
    return {
        "nproc": os.cpu_count(), "cpu": cpu[1] if cpu else platform.processor(),
        "memory_gib": round(int(memory[1]) / 2**20, 1) if memory else None,
        "disk": " ".join(device), "os": platform.platform(), "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version, "litestream": litestream_version(),
        "commit": commit + (" (src modified)" if dirty else ""),
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
    }


def load() -> float:
    return os.getloadavg()[0]


def drop_caches() -> bool:
    """Empty the page cache (needs root); False when not permitted."""
    os.sync()
    try:
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
    except OSError:
        return False
    return True


def new_database(path: Path) -> None:
    """An empty mail database with the one mailbox the writer delivers to."""
    with MailDatabase.create(path) as database:
        database.create_mailbox(RECIPIENT)


def copy_database(source: Path, target: Path) -> None:
    """Copy a closed database (its WAL was checkpointed away when the last connection closed)."""
    if Path(f"{source}-wal").exists():
        raise RuntimeError(f"{source} has a WAL: close every connection first")
    shutil.copyfile(source, target)


def run_workload(db: Path, ops: int, seed: int) -> dict[str, Any]:
    """`cps store workload` in its own process; its JSON summary."""
    out = subprocess.run(
        [sys.executable, "-m", "cps", "store", "workload", str(db), "--ops", str(ops),
         "--seed", str(seed), "--corpus", str(WORKLOAD_CORPUS), "--json"],
        check=True, capture_output=True, text=True)
    return dict(json.loads(out.stdout))


def run_writer(db: Path, count: int, *, first: int = 0, rate: float | None = None,
               record: Path | None = None, mark_at: int | None = None, fast: bool = False
               ) -> dict[str, Any]:
    """bench/writer.py in its own process; its record (with --record) or its summary."""
    command = [sys.executable, str(WRITER), str(db), "--count", str(count), "--first", str(first)]
    if rate:
        command += ["--rate", str(rate)]
    if record:
        command += ["--record", str(record)]
    if mark_at is not None:
        command += ["--mark-at", str(mark_at)]
    if fast:
        command.append("--fast")
    out = subprocess.run(command, check=True, capture_output=True, text=True)
    if record:
        return dict(json.loads(record.read_text()))
    return dict(json.loads(out.stdout))


def mail_fingerprint(db: Path) -> dict[str, Any]:
    """The writer's fingerprint of a restored database (opened read-only)."""
    from writer import fingerprint
    connection = sqlite3.connect(f"file:{db}?immutable=1", uri=True)
    try:
        return fingerprint(connection)
    finally:
        connection.close()


def granular_arguments(description: str, what: str, default: Path) -> argparse.Namespace:
    """The options of a benchmark of one file or folder of bench/granular.py's store: `--<what>`
    (default `default`), `--rounds` and `--json`."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(f"--{what}", type=Path, default=default)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", type=Path, help="Also write the result to this file.")
    return parser.parse_args()
