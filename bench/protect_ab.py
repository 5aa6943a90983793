"""Which part of the protector costs the writer what: the same run with ProtectOptions changed.

    .venv/bin/python bench/protect_ab.py VARIANTS [--deliveries N] [--base N] [--rounds R]
                                          [--workload]

VARIANTS is a JSON object, name -> options for `cps.capture.ProtectOptions` (null: unprotected),
for example '{"none": null, "cps": {}, "no-change-fulls": {"full_after_changes_min": 1e15}}'. An option
"code": "DIR" runs the protector from another source tree (DIR holds the `cps` package, e.g. from
`git archive COMMIT src | tar -x -C /tmp/base`), so that two versions of the code meet on the same
machine at the same moment: '{"none": null, "base": {"code": "/tmp/base/src"}, "new": {}}'. Each round
runs every variant on a fresh copy of one database (`--base` corpus deliveries, built once), the
writer delivering `--deliveries` messages flat out, one per transaction (or, with --workload,
`cps store workload --ops N`). The protector runs in its own process (this file, with `--serve`)
and reports its longest capture cycle, how long it held the database's write lock (forced WAL
resets: total and longest) and the peak RSS of its child processes (full backups made in one); the
benchmark samples the WAL and the protector's RSS and CPU as bench/protect.py does.
Prints one line per run and the medians, and each protected variant's ratio to the unprotected run
of the same round (median, min-max).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
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
    """The protector, with its longest cycle and the time it holds the database's write lock
    measured; prints "ready" and, at the end, a summary."""
    from cps.capture import ProtectOptions, Protector
    from cps.capture.pinning import ReaderPins
    from cps.repository import Repository

    repo = Repository.init(repo_path)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda _n, _f: stop.set())
    events: list[str] = []
    protector = Protector(db, repo, "bench", ProtectOptions(recovery_point_every=None, **options),
                          on_event=lambda event, _fields: events.append(event))
    cycles = Durations()
    locked = Durations()  # from BEGIN IMMEDIATE taken to released, in each forced WAL reset
    protector.cycle = cycles.timed(protector.cycle)  # type: ignore[method-assign]
    take_lock, force_reset = ReaderPins._take_write_lock, ReaderPins.force_reset
    taken_at = [0.0]

    def timed_take(pins: ReaderPins) -> bool:
        taken = take_lock(pins)
        taken_at[0] = time.perf_counter()
        return taken

    def timed_reset(pins: ReaderPins, *args: Any) -> bool:
        taken_at[0] = 0.0
        reset = force_reset(pins, *args)
        if taken_at[0]:
            locked.add(time.perf_counter() - taken_at[0])
        return reset

    ReaderPins._take_write_lock = timed_take  # type: ignore[method-assign]
    ReaderPins.force_reset = timed_reset  # type: ignore[method-assign]
    with repo.protector_lock("bench"):
        protector.run(stop, on_ready=lambda: print("ready", flush=True))
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # KiB, the largest child
    print(json.dumps({"full_backups": events.count("full-backup"), "wal_resets":
                      events.count("wal-reset"), "cycles": cycles.count,
                      "longest_cycle_ms": round(cycles.longest * 1000, 1),
                      "write_lock_ms_total": round(locked.total * 1000, 1),
                      "write_lock_ms_max": round(locked.longest * 1000, 1),
                      "children_rss_max_mib": round(children / 1024, 1)}), flush=True)


class Durations:
    def __init__(self) -> None:
        self.count, self.total, self.longest = 0, 0.0, 0.0

    def add(self, seconds: float) -> None:
        self.count += 1
        self.total += seconds
        self.longest = max(self.longest, seconds)

    def timed(self, function: Any) -> Any:
        def timed_call(*args: Any) -> Any:
            started = time.perf_counter()
            try:
                return function(*args)
            finally:
                self.add(time.perf_counter() - started)
        return timed_call


def one_run(name: str, options: dict[str, Any] | None, seed: Path, work: Path, count: int,
            first: int, workload: bool) -> dict[str, Any]:
    work.mkdir()
    db = work / "mail.db"
    copy_database(seed, db)
    os.sync()  # the copy's writeback would otherwise slow the run's first checkpoints
    process = None
    if options is not None:
        options = dict(options)
        environment = dict(os.environ)
        if "code" in options:
            environment["PYTHONPATH"] = options.pop("code")
        process = subprocess.Popen([sys.executable, __file__, "--serve", str(db), str(work / "repo"),
                                    json.dumps(options)], stdout=subprocess.PIPE, text=True,
                                   env=environment)
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


SUMMARY_FIELDS = ("protector_cpu_seconds", "wal_max_mib", "rss_max_mib", "rss_last_mib",
                  "write_lock_ms_total", "write_lock_ms_max", "longest_cycle_ms",
                  "children_rss_max_mib", "full_backups", "wal_resets")


def print_summary(variants: dict[str, Any], runs: dict[str, list[dict[str, Any]]]) -> None:
    unprotected = next((name for name, options in variants.items() if options is None), None)
    for name, results in runs.items():
        rates = [run["per_second"] for run in results]
        line = f"{name}: median {statistics.median(rates):.1f}/s {rates}"
        if unprotected is not None and name != unprotected:
            ratios = [r / u["per_second"] for r, u in zip(rates, runs[unprotected], strict=True)]
            line += (f"; / {unprotected} per round: median {statistics.median(ratios):.3f} "
                     f"({min(ratios):.3f}-{max(ratios):.3f})")
        medians = {field: statistics.median(values) for field in SUMMARY_FIELDS
                   if (values := [run[field] for run in results if run.get(field) is not None])}
        print(line + ("; medians " + json.dumps(medians) if medians else ""))


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
        runs: dict[str, list[dict[str, Any]]] = {name: [] for name in args.variants}
        names = list(args.variants)
        for number in range(args.rounds):
            shift = number % len(names)  # the order rotates, so no variant always runs first
            for name in names[shift:] + names[:shift]:
                runs[name].append(one_run(name, args.variants[name], seed,
                                          root / f"{name}-{number}", args.deliveries, args.base,
                                          args.workload))
                shutil.rmtree(root / f"{name}-{number}")
        print_summary(args.variants, runs)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
