"""Continuous protection benchmark: CPS (`cps protect`) against Litestream, on the same databases and
workloads, in the same run, alternating.

    .venv/bin/python bench/protect.py throughput|lag|restore|size [--quick] [--rounds N]
                                     [--out FILE] [--keep] [--profile DIR]

Parts (docs/benchmarks.md, "Continuous protection", gives each method in full):

* throughput: the writer's speed unprotected, under CPS and under Litestream. Short runs: `cps store
  workload --ops N` (one transaction per operation) on copies of one seeded database, the three
  configurations in a rotating order each round. Sustained run: bench/writer.py delivering
  100,000 corpus messages flat out, one per transaction, into an empty database. Every run samples
  the WAL file's size and the protector's VmRSS every 0.2 s, and its CPU time.
* lag: commit to durable in the repository at --sync-interval 1s and 100ms (Litestream's
  monitor-interval and sync-interval set to the same), from the writer's commit times and the first
  time each repository file was seen (protect_lag.py).
* restore: a ~1 GB database restored cold, latest and at a quiet point in the middle of the
  protected log: `cps restore`, `litestream restore`, and cp + sync of the database file
  (protect_restore.py).
* size: the repository (CPS) and the replica (Litestream) after the same workload.

Everything lives in a temporary folder under /tmp, removed at the end (unless --keep); the ~1 GB
restore database is kept in /tmp/cps-bench-cache for the next run. Child processes are stopped with
SIGTERM. Nothing listens on a port. The results are printed as JSON (and written to --out).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from common import (
    WORKLOAD_CORPUS,
    copy_database,
    load,
    machine,
    new_database,
    run_workload,
    run_writer,
    spread,
)
from protectors import (
    CPSProtector,
    LitestreamProtector,
    Protector,
    Sampler,
    tree_bytes,
    wait_for,
)

CONFIGS = ("unprotected", "cps", "litestream")
WARM_UP_OPS = 2000
SEED = 7


@contextlib.contextmanager
def protected(config: str, db: Path, work: Path, sync_interval: str = "1s",
              profile: Path | None = None) -> Iterator[Protector | None]:
    """The database under `config`'s protector (none for "unprotected") for a `with` block."""
    if config == "unprotected":
        yield None
        return
    protector: Protector
    if config == "cps":
        protector = CPSProtector(db, work, sync_interval, profile)
    else:
        protector = LitestreamProtector(db, work, sync_interval)
    with protector:
        yield protector


def one_run(config: str, seed_db: Path, work: Path, drive: Callable[[Path], dict[str, Any]],
            profile: Path | None = None) -> dict[str, Any]:
    """Copy the seed database, protect it as `config`, run `drive` on it, and report."""
    work.mkdir(parents=True)
    db = work / "mail.db"
    copy_database(seed_db, db)
    result: dict[str, Any] = {"config": config, "load_before": round(load(), 2)}
    with protected(config, db, work, profile=profile) as protector:
        if protector is not None:
            result["startup_seconds"] = round(protector.startup_seconds, 2)
        with Sampler(db, protector.pid if protector else None) as samples:
            result.update(drive(db))
        if isinstance(protector, CPSProtector):
            ended = time.time() * 1000
            cps = protector
            wait_for(lambda: (cps.status().get("protector") or {}).get("updated_at", 0) > ended,
                     "a status written after the run", 30, None)
            status = protector.status().get("protector") or {}
            result["cps_status_lag_p50"] = status.get("lag_p50")
            result["cps_status_lag_p99"] = status.get("lag_p99")
        if protector is not None:
            result["stop_seconds"] = round(protector.stop(), 2)
    result.update(samples.summary())
    result["rss_series"] = samples.rss[:: max(1, len(samples.rss) // 20)]
    result["wal_series"] = samples.wal[:: max(1, len(samples.wal) // 20)]
    result["db_bytes"] = db.stat().st_size
    if protector is not None:
        result["storage_bytes"] = tree_bytes(protector.storage())
    if isinstance(protector, CPSProtector):
        result["wal_resets"] = protector.count("wal-reset")
        result["full_backups"] = protector.count("full-backup")
    if isinstance(protector, LitestreamProtector):
        result["litestream_local_bytes"] = tree_bytes(work / ".mail.db-litestream")
    result["load_after"] = round(load(), 2)
    print(f"  {config:12} {_brief(result)}", file=sys.stderr, flush=True)
    return result


def _brief(result: dict[str, Any]) -> str:
    rate = result.get("ops_per_second") or result.get("per_second")
    return (f"{rate}/s wal max {result['wal_max_mib']} MiB rss max {result['rss_max_mib']} MiB "
            f"storage {result.get('storage_bytes', 0) / 2**20:.1f} MiB load {result['load_after']}")


def rotated(configs: tuple[str, ...], round_number: int) -> tuple[str, ...]:
    shift = round_number % len(configs)
    return configs[shift:] + configs[:shift]


def short_runs(root: Path, configs: tuple[str, ...], ops: int, rounds: int,
               profile: Path | None) -> list[dict[str, Any]]:
    seed_db = root / "seed.db"
    new_database(seed_db)
    run_workload(seed_db, WARM_UP_OPS, SEED)
    runs = []
    for number in range(rounds):
        print(f"round {number + 1}/{rounds}: workload --ops {ops}", file=sys.stderr)
        for config in rotated(configs, number):
            prof = profile / f"cps-{number}.prof" if profile and config == "cps" else None
            run = one_run(config, seed_db, root / f"short-{number}-{config}",
                          lambda db: run_workload(db, ops, SEED + 1), prof)
            runs.append({"round": number, **run})
    return runs


def sustained_runs(root: Path, configs: tuple[str, ...], count: int, rounds: int
                   ) -> list[dict[str, Any]]:
    seed_db = root / "empty.db"
    new_database(seed_db)

    def drive(db: Path) -> dict[str, Any]:
        record = run_writer(db, count, record=db.parent / "record.json")
        return {"per_second": round(count / record["elapsed"], 2),
                "windows_per_second": _windows(record["commits"], 10)}

    runs = []
    for number in range(rounds):
        print(f"round {number + 1}/{rounds}: {count} deliveries", file=sys.stderr)
        for config in rotated(configs, number):
            runs.append({"round": number, **one_run(config, seed_db,
                                                    root / f"sustained-{number}-{config}", drive)})
    return runs


def _windows(commits: list[float], parts: int) -> list[float]:
    """Deliveries a second in each tenth of the run: does protection slow down as the db grows?"""
    size = len(commits) // parts
    rates = []
    for index in range(parts):
        first, last = commits[index * size], commits[min(len(commits), (index + 1) * size) - 1]
        rates.append(round((size - 1) / (last - first), 1) if last > first else 0.0)
    return rates


def summarise(runs: list[dict[str, Any]], rate_key: str) -> dict[str, Any]:
    by_config: dict[str, dict[str, Any]] = {}
    for config in sorted({r["config"] for r in runs}):
        mine = [r for r in runs if r["config"] == config]
        by_config[config] = {
            key: spread([r[key] for r in mine if r.get(key) is not None])
            for key in (rate_key, "wal_max_mib", "rss_max_mib", "rss_last_mib",
                        "protector_cpu_seconds", "protector_written_mib", "storage_bytes",
                        "db_bytes",
                        "cps_status_lag_p50", "cps_status_lag_p99")
        }
    rates = {(r["round"], r["config"]): r[rate_key] for r in runs}
    for config in ("cps", "litestream"):
        ratios = [rates[(n, config)] / rates[(n, "unprotected")]
                  for n in {r["round"] for r in runs}
                  if (n, config) in rates and (n, "unprotected") in rates]
        if ratios:
            by_config[config]["ratio_to_unprotected"] = spread(ratios)
    sizes = {(r["round"], r["config"]): int(r.get("storage_bytes") or 0) for r in runs}
    size_ratios = [sizes[(n, "cps")] / sizes[(n, "litestream")]
                   for n in {r["round"] for r in runs}
                   if sizes.get((n, "cps")) and sizes.get((n, "litestream"))]
    if size_ratios:
        by_config["cps"]["size_ratio_to_litestream"] = spread(size_ratios)
    return by_config


def part_throughput(root: Path, args: argparse.Namespace) -> dict[str, Any]:
    ops = 2000 if args.quick else 20_000
    count = 5000 if args.quick else 100_000
    short = short_runs(root, CONFIGS, ops, args.rounds, args.profile)
    sustained = sustained_runs(root, CONFIGS, count, args.sustained_rounds)
    return {"short": {"ops": ops, "corpus": str(WORKLOAD_CORPUS), "runs": short,
                      "summary": summarise(short, "ops_per_second")},
            "sustained": {"deliveries": count, "runs": sustained,
                          "summary": summarise(sustained, "per_second")}}


def part_size(root: Path, args: argparse.Namespace) -> dict[str, Any]:
    ops = 2000 if args.quick else 20_000
    runs = short_runs(root, ("cps", "litestream"), ops, args.rounds, None)
    return {"ops": ops, "runs": runs, "summary": summarise(runs, "ops_per_second")}


def part_lag(root: Path, args: argparse.Namespace) -> dict[str, Any]:
    from protect_lag import measure_lag
    return measure_lag(root, args.rounds, args.quick)


def part_restore(root: Path, args: argparse.Namespace) -> dict[str, Any]:
    from protect_restore import measure_restore
    return measure_restore(root, args.rounds, args.quick, args.rebuild)


PARTS = {"throughput": part_throughput, "lag": part_lag, "restore": part_restore,
         "size": part_size}


def main() -> None:
    parser = argparse.ArgumentParser(description="CPS continuous protection vs Litestream")
    parser.add_argument("part", choices=sorted(PARTS))
    parser.add_argument("--quick", action="store_true", help="small runs, to try the benchmark")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--sustained-rounds", type=int, default=1)
    parser.add_argument("--out", type=Path, help="also write the JSON results here")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument("--rebuild", action="store_true", help="rebuild the cached restore database")
    parser.add_argument("--profile", type=Path,
                        help="run the CPS protector under cProfile, profiles in this folder")
    args = parser.parse_args()
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix=f"cps-bench-{args.part}-", dir="/tmp"))
    started = time.monotonic()
    try:
        result = {"part": args.part, "machine": machine(root), "load_start": list(_loads()),
                  **PARTS[args.part](root, args)}
        result["load_end"] = list(_loads())
        result["seconds"] = round(time.monotonic() - started, 1)
    finally:
        if args.keep:
            print(f"kept {root}", file=sys.stderr)
        else:
            shutil.rmtree(root, ignore_errors=True)
    text = json.dumps(result, indent=1)
    if args.out:
        args.out.write_text(text + "\n")
    print(text)


def _loads() -> tuple[float, ...]:
    import os
    return tuple(round(x, 2) for x in os.getloadavg())


if __name__ == "__main__":
    main()
