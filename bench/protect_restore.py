"""Restore of a ~1 GB mail database, cold: `cps restore`, `litestream restore` and cp + sync.

The base database is built once with bench/writer.py (corpus messages, each made unique, synchronous
off because only its content matters) and kept in CACHE for later runs. For each tool a copy of it
is protected from scratch (the first full backup, or Litestream's first snapshot, is timed), then
the writer delivers LOG_COUNT more messages, one per transaction, pausing MARK_PAUSE seconds half
way; the middle of that pause is the mid-point target, and the writer records a fingerprint of the
mail tables there and at the end (counts and SHA-256 over folders, bodies and messages in id order).

Each round restores, after `sync; echo 3 > /proc/sys/vm/drop_caches`, the latest state and the
mid-point with each tool (CPS: --latest and --at TIME; Litestream: no target and -timestamp TIME),
and copies the final database file with cp followed by `sync FILE` (the physical floor), in an order
that alternates between rounds. Every restored database is checked against the fingerprint.

Outside the timed rounds: CPS --txn at the mid-point, and both tools at a time in the middle of
continuous writing (how many transactions each lands away from the commits made by then), and how
long PRAGMA integrity_check (which `cps restore` runs and `litestream restore` skips by default)
takes on the restored file with a warm cache.
"""

from __future__ import annotations

import datetime
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from common import (
    copy_database,
    drop_caches,
    mail_fingerprint,
    new_database,
    run_writer,
    spread,
)
from protectors import CPSProtector, LitestreamProtector, Protector, Sampler, tree_bytes

CACHE = Path("/tmp/cps-bench-cache")
BASE_COUNT, QUICK_BASE_COUNT = 190_000, 10_000  # ~1 GB, ~50 MB
# About 19 pages a delivery: 3,000 stay just under the log CPS lets grow before it takes another
# full backup (a quarter of the database), so a CPS restore replays the longest log it ever would.
LOG_COUNT, QUICK_LOG_COUNT = 3_000, 500
MARK_PAUSE = 3.0


def base_database(count: int, rebuild: bool) -> Path:
    path = CACHE / f"base-{count}.db"
    if path.exists() and not rebuild:
        return path
    CACHE.mkdir(exist_ok=True)
    building = CACHE / f"building-{count}.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{building}{suffix}").unlink(missing_ok=True)
    print(f"building the base database ({count} deliveries)", file=sys.stderr, flush=True)
    new_database(building)
    run_writer(building, count, fast=True)
    building.rename(path)
    return path


def protect_phase(tool: str, base: Path, base_count: int, work: Path, log_count: int
                  ) -> dict[str, Any]:
    work.mkdir(parents=True)
    db = work / "mail.db"
    copy_database(base, db)
    protector: Protector = (CPSProtector(db, work) if tool == "cps"
                            else LitestreamProtector(db, work))
    with protector, Sampler(db, protector.pid) as samples:
        record = run_writer(db, log_count, first=base_count, record=work / "record.json",
                            mark_at=log_count // 2)
    phase = {**samples.summary(), "tool": tool, "db": db, "record": record, "protector": protector,
             "first_backup_seconds": round(protector.startup_seconds, 1),
             "storage_bytes": tree_bytes(protector.storage()),
             "log_per_second": round(log_count / record["elapsed"], 1)}
    if isinstance(protector, CPSProtector):
        phase["ready_txn"] = protector.ready_txn
        phase["full_backups"] = protector.count("full-backup")
    print(f"  protected with {tool}: first backup {phase['first_backup_seconds']} s, "
          f"storage {phase['storage_bytes'] / 2**20:.0f} MiB", file=sys.stderr, flush=True)
    return phase


def checkpointed(db: Path) -> None:
    """Fold the WAL the protector left back into the file, so cp copies the whole database."""
    connection = sqlite3.connect(db)
    try:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        connection.close()


def iso(seconds: float) -> str:
    moment = datetime.datetime.fromtimestamp(seconds, datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def restore_command(tool: str, phase: dict[str, Any], out: Path, at: float | None,
                    txn: int | None = None, check: bool = False) -> list[str]:
    protector = phase["protector"]
    if tool == "cps":
        target = (["--txn", str(txn)] if txn is not None
                  else ["--at", iso(at)] if at is not None else ["--latest"])
        return [sys.executable, "-m", "cps", "restore", str(protector.repo), "--db", "bench",
                "--to", str(out), *target, "--json"]
    timestamp = ["-timestamp", iso(at)] if at is not None else []
    integrity = ["-integrity-check", "full"] if check else []
    return [str(Path(sys.executable).parent / "litestream"), "restore", *timestamp, *integrity,
            "-o", str(out), f"file://{protector.replica}"]


def timed(command: list[list[str]], cold: bool) -> float:
    if cold:
        drop_caches()
    started = time.monotonic()
    for step in command:
        subprocess.run(step, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return time.monotonic() - started


def remove(out: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{out}{suffix}").unlink(missing_ok=True)


def restore_round(phases: dict[str, dict[str, Any]], source: Path, out: Path, number: int,
                  cold: bool) -> list[dict[str, Any]]:
    cases = [("latest", "cps"), ("latest", "litestream"), ("latest", "litestream+check"),
             ("latest", "cp"), ("mid", "cps"), ("mid", "litestream")]
    if number % 2:
        cases.reverse()
    runs = []
    for target, tool in cases:
        phase = phases.get(tool.split("+")[0], phases["cps"])
        record = phase["record"]
        at = record["mark"]["time"] if target == "mid" else None
        if tool == "cp":
            command = [["cp", str(source), str(out)], ["sync", str(out)]]
        else:
            command = [restore_command(tool.split("+")[0], phase, out, at,
                                       check=tool.endswith("+check"))]
        try:
            seconds = timed(command, cold)
        except subprocess.CalledProcessError as exc:
            runs.append({"round": number, "target": target, "tool": tool, "seconds": None,
                         "failed": exc.stderr.decode(errors="replace")[:500]})
            print(f"  {target:6} {tool:17} FAILED", file=sys.stderr, flush=True)
            remove(out)
            continue
        expected = record["mark"] if target == "mid" else record["end"]
        got = mail_fingerprint(out)
        runs.append({"round": number, "target": target, "tool": tool,
                     "seconds": round(seconds, 2), "exact": got == {k: expected[k] for k in got},
                     "messages": got["counts"]["messages"],
                     "expected_messages": expected["counts"]["messages"]})
        print(f"  {target:6} {tool:17} {seconds:6.2f} s exact {runs[-1]['exact']}",
              file=sys.stderr, flush=True)
        remove(out)
    return runs


def exactness(phases: dict[str, dict[str, Any]], base_count: int, out: Path) -> dict[str, Any]:
    cps, found = phases["cps"], dict[str, Any]()
    mark = cps["record"]["mark"]
    subprocess.run(restore_command("cps", cps, out, None, txn=cps["ready_txn"] + mark["after"]),
                   check=True, capture_output=True)
    found["cps_txn_exact"] = mail_fingerprint(out) == {k: mark[k] for k in ("counts", "sha256")}
    remove(out)
    for tool in ("cps", "litestream"):
        commits = phases[tool]["record"]["commits"]
        at = commits[len(commits) * 3 // 4] + 0.0005
        expected = base_count + sum(1 for c in commits if c <= at)
        subprocess.run(restore_command(tool, phases[tool], out, at), check=True,
                       capture_output=True)
        got = mail_fingerprint(out)["counts"]["messages"]
        found[f"{tool}_mid_stream_off_by_txns"] = got - expected
        if tool == "cps":
            started = time.monotonic()
            connection = sqlite3.connect(f"file:{out}?immutable=1", uri=True)
            connection.execute("PRAGMA integrity_check").fetchall()
            connection.close()
            found["integrity_check_warm_seconds"] = round(time.monotonic() - started, 2)
        remove(out)
    return found


def measure_restore(root: Path, rounds: int, quick: bool, rebuild: bool) -> dict[str, Any]:
    base_count = QUICK_BASE_COUNT if quick else BASE_COUNT
    log_count = QUICK_LOG_COUNT if quick else LOG_COUNT
    base = base_database(base_count, rebuild)
    phases = {tool: protect_phase(tool, base, base_count, root / tool, log_count)
              for tool in ("cps", "litestream")}
    source = phases["cps"]["db"]
    checkpointed(source)
    out = root / "restored.db"
    cold = drop_caches()
    runs = []
    for number in range(rounds):
        print(f"restore round {number + 1}/{rounds}", file=sys.stderr, flush=True)
        runs.extend(restore_round(phases, source, out, number, cold))
    extra: dict[str, Any] = {}
    try:
        extra = exactness(phases, base_count, out)
    except subprocess.CalledProcessError as exc:
        extra = {"error": f"{exc.cmd}: {exc.stderr}"}
    summary = {f"{t}/{tool}": spread([r["seconds"] for r in runs if r["seconds"] is not None
                                      and r["target"] == t and r["tool"] == tool], 2)
               for t, tool in {(r["target"], r["tool"]) for r in runs}}
    return {
        "cold_cache": cold, "base_deliveries": base_count, "log_deliveries": log_count,
        "database_bytes": source.stat().st_size, "base_bytes": base.stat().st_size,
        "phases": {tool: {k: v for k, v in p.items() if k not in ("db", "record", "protector")}
                   for tool, p in phases.items()},
        "runs": runs, "summary": summary, "exactness": extra,
    }
