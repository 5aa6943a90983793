"""Which part of the protector costs the writer what: the same run with ProtectOptions changed.

    .venv/bin/python bench/protect_ab.py VARIANTS [--deliveries N] [--base N] [--rounds R]
                                          [--workload]

VARIANTS is a JSON object, name -> options for `cps.capture.ProtectOptions` (null: unprotected),
for example '{"none": null, "cps": {}, "no-log-fulls": {"full_after_log_min": 1e15}}'. Each round
runs every variant on a fresh copy of one database (`--base` corpus deliveries, built once), the
writer delivering `--deliveries` messages flat out, one per transaction (or, with --workload,
`cps store workload --ops N`). The protector runs in its own process (this file, with `--serve`)
and reports its longest capture cycle; the benchmark samples the WAL and the protector's RSS and
CPU as bench/protect.py does. Prints one line per run and the medians.
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from common import copy_database, new_database, run_workload, run_writer
from protectors import Sampler


def serve(db: Path, repo_path: Path, options: dict[str, Any]) -> None:
    """The protector, with its longest cycle measured; prints "ready" and, at the end, a summary."""
    from cps.capture import ProtectOptions, Protector
    from cps.repository import Repository

    repo = Repository.init(repo_path)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda _n, _f: stop.set())
    events: list[str] = []
    protector = Protector(db, repo, "bench", ProtectOptions(recovery_point_every=None, **options),
                          on_event=lambda event, _fields: events.append(event))
    longest = [0.0, 0]
    cycle = protector.cycle

    def timed_cycle() -> None:
        started = time.perf_counter()
        cycle()
        longest[0] = max(longest[0], time.perf_counter() - started)
        longest[1] += 1

    protector.cycle = timed_cycle  # type: ignore[method-assign]
    with repo.protector_lock("bench"):
        protector.run(stop, on_ready=lambda: print("ready", flush=True))
    print(json.dumps({"full_backups": events.count("full-backup"), "wal_resets":
                      events.count("wal-reset"), "cycles": longest[1],
                      "longest_cycle_ms": round(longest[0] * 1000, 1)}), flush=True)


def one_run(name: str, options: dict[str, Any] | None, seed: Path, work: Path, count: int,
            first: int, workload: bool) -> dict[str, Any]:
    work.mkdir()
    db = work / "mail.db"
    copy_database(seed, db)
    process = None
    if options is not None:
        process = subprocess.Popen([sys.executable, __file__, "--serve", str(db), str(work / "repo"),
                                    json.dumps(options)], stdout=subprocess.PIPE, text=True)
        assert process.stdout is not None and process.stdout.readline().strip() == "ready"
    with Sampler(db, process.pid if process else None) as samples:
        if workload:
            rate = float(run_workload(db, count, 8)["ops_per_second"])
        else:
            rate = count / float(run_writer(db, count, first=first)["elapsed"])
    report: dict[str, Any] = {}
    if process is not None:
        process.send_signal(signal.SIGTERM)
        assert process.stdout is not None
        report = json.loads(process.stdout.readline())
        process.wait()
    result = {"variant": name, "per_second": round(rate, 1), **samples.summary(), **report}
    print(json.dumps(result), flush=True)
    return result


def main() -> None:
    if sys.argv[1:2] == ["--serve"]:
        serve(Path(sys.argv[2]), Path(sys.argv[3]), json.loads(sys.argv[4]))
        return
    parser = argparse.ArgumentParser(description="protector options A/B")
    parser.add_argument("variants", type=json.loads)
    parser.add_argument("--deliveries", type=int, default=20_000)
    parser.add_argument("--base", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--workload", action="store_true")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="cps-bench-ab-", dir="/tmp"))
    try:
        seed = root / "seed.db"
        new_database(seed)
        if args.workload:
            run_workload(seed, 2000, 7)
        else:
            run_writer(seed, args.base, fast=True)
        results: dict[str, list[float]] = {name: [] for name in args.variants}
        for number in range(args.rounds):
            for name, options in args.variants.items():
                run = one_run(name, options, seed, root / f"{name}-{number}", args.deliveries,
                              args.base, args.workload)
                results[name].append(run["per_second"])
                shutil.rmtree(root / f"{name}-{number}")
        for name, rates in results.items():
            print(f"{name}: median {statistics.median(rates):.1f}/s {rates}")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
