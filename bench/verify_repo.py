"""`cps verify repo` on the ~0.9 GB repository of bench/granular.py: the fast check in seconds per
GB, `--read-all` in MB/s.

    python bench/verify_repo.py [--repo /tmp/cps-bench-granular/repo] [--rounds 3] [--json FILE]

The repository is only read: the check writes nothing, and the run fails if any file's name, size
or modification time changed. Each round, on a warm page cache: `check_repository` (everything
`cps verify repo` does, without interpreter start-up), then `check_repository(read_all=True)`.
Both must find the repository clean, or the run fails.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from common import granular_arguments, machine, spread
from cps.repository import Repository
from cps.verify import check_repository

Files = dict[str, tuple[int, int]]


def files(root: Path) -> Files:
    """Every file's size and modification time, by path."""
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in root.rglob("*") if p.is_file()}


def data_bytes(found: Files) -> int:
    return sum(size for name, (size, _mtime) in found.items() if not name.startswith("locks"))


def timed_check(repo: Repository, *, read_all: bool) -> float:
    started = time.perf_counter()
    report = check_repository(repo, read_all=read_all)
    seconds = time.perf_counter() - started
    assert report.clean, report.findings
    return seconds


def warm(root: Path) -> None:
    """Read every file once, so that every round reads from the page cache."""
    for path in root.rglob("*"):
        if path.is_file():
            with path.open("rb") as file:
                while file.read(8 << 20):
                    pass


def main() -> None:
    args = granular_arguments(__doc__.splitlines()[0], "repo", Path("/tmp/cps-bench-granular/repo"))
    before = files(args.repo)
    size = data_bytes(before)
    repo = Repository.open(args.repo, passphrase=os.environ.get("CPS_PASSPHRASE"))
    warm(args.repo)
    fast, read_all = [], []
    for _ in range(args.rounds):
        fast.append(timed_check(repo, read_all=False))
        read_all.append(timed_check(repo, read_all=True))
    assert files(args.repo) == before, "the check changed the repository"
    result: dict[str, Any] = {
        "machine": machine(args.repo), "bytes": size, "load_average": os.getloadavg(),
        "fast_seconds": spread(fast), "read_all_seconds": spread(read_all),
        "fast_seconds_per_gb": round(sorted(fast)[len(fast) // 2] / (size / 1e9), 3),
        "read_all_mb_per_s": round(size / 1e6 / sorted(read_all)[len(read_all) // 2], 1)}
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
