"""`cps drill` on the ~0.9 GB repository of bench/granular.py, against its peer measured in the same
run: one `cps restore --latest` and one `cps verify store` of the result, done by hand.

    python bench/drill.py [--repo /tmp/cps-bench-granular/repo] [--rounds 3] [--json FILE]

The drill restores two points (one transaction at random, seeded by the round, and the latest
state; no recovery point window), so a round of it is two restores and two checks: its ratio to
the peer is per point. It runs on a copy of the repository made of hard links (the repository's
files never change once written), so that its drill records are not added to the original. Every
drill must pass and every check of the peer find nothing, or the run fails.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from common import granular_arguments, machine, spread
from cps.ops import restore_database
from cps.repository import Repository
from cps.restore import Target
from cps.verify import DrillOptions, check_store, drill

DB_ID = "bench"  # as bench/granular.py names it
POINTS = 2  # one random transaction and the latest state


def linked_copy(source: Path, target: Path) -> None:
    shutil.copytree(source, target, copy_function=os.link,
                    ignore=shutil.ignore_patterns("locks"))


def timed_drill(repo: Repository, seed: int, work: Path) -> float:
    started = time.perf_counter()
    report = drill(repo, DB_ID, DrillOptions(random_points=POINTS - 1, window=0, seed=seed),
                   work_dir=work)
    seconds = time.perf_counter() - started
    assert report.passed and len(report.record.points) == POINTS, report.to_json()
    return seconds


def timed_peer(repo: Repository, work: Path) -> float:
    output = work / "peer.db"
    started = time.perf_counter()
    restore_database(repo, DB_ID, Target("latest"), output)
    found = check_store(output)
    seconds = time.perf_counter() - started
    assert found.clean, found.findings
    for leftover in work.glob("peer.db*"):
        leftover.unlink()
    return seconds


def main() -> None:
    args = granular_arguments(__doc__.splitlines()[0], "repo", Path("/tmp/cps-bench-granular/repo"))
    with tempfile.TemporaryDirectory(prefix="cps-bench-drill-", dir=args.repo.parent) as folder:
        copy, work = Path(folder) / "repo", Path(folder) / "work"
        linked_copy(args.repo, copy)
        work.mkdir()
        repo = Repository.open(copy, passphrase=os.environ.get("CPS_PASSPHRASE"))
        load_before = os.getloadavg()
        drills, peers = [], []
        for round_number in range(args.rounds):
            peers.append(timed_peer(repo, work))
            drills.append(timed_drill(repo, round_number, work))
    median_drill, median_peer = (sorted(v)[len(v) // 2] for v in (drills, peers))
    result: dict[str, Any] = {
        "machine": machine(args.repo), "load_average_before": load_before,
        "load_average_after": os.getloadavg(), "points": POINTS,
        "drill_seconds": spread(drills), "peer_seconds": spread(peers),
        "drill_seconds_per_point": round(median_drill / POINTS, 2),
        "ratio_per_point": round(median_drill / POINTS / median_peer, 2)}
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
