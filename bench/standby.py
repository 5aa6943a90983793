"""Standby benchmark: how closely a standby copy follows a protected database, what replay costs,
and how long a promotion takes.

    .venv/bin/python bench/standby.py replay [--count N] [--rounds N] [--interval 500ms]
    .venv/bin/python bench/standby.py promote [--repo DIR] [--rounds N]

* replay: `cps protect` (sync interval 1s) on an empty database while bench/writer.py delivers
  --count corpus messages flat out, one per transaction, and `cps standby run` (--interval) replays
  a copy. A thread reads the copy's standby record every POLL_SECONDS and notes when each
  transaction was first applied (the record is replaced after the pages are written and fsynced,
  so a transaction it names is in the copy). The replay lag of a commit is that moment minus the
  time its COMMIT returned in the writer. Replay CPU is the standby process's user + system time
  (wait4), divided by the deliveries.
* promote: bench/granular.py's ~1.2 GB store and repository (its points "work" and "end", 101
  transactions apart). A copy is seeded at "work" (replay with a one-hour lag, as seen one hour
  after the point), kept aside, and for each round copied to a fresh place and promoted by the
  real command: to "work" (no log to play) and to "end" (the log between). Each is timed with the
  page cache warm and after dropping it.

No peer: Litestream has no standby that replays into a copy. Results are printed as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from common import drop_caches, load, machine, new_database, percentile, run_writer, spread
from cps.repository import Repository
from cps.repository.standby_record import read_record, record_path
from cps.restore.standby import begin, replay
from protectors import CPSProtector

POLL_SECONDS = 0.005
DEFAULT_REPO = Path("/tmp/cps-bench-granular/repo")


class Applied:
    """Polls a standby record in a thread: when each transaction was first in the copy."""

    def __init__(self, copy: Path) -> None:
        self.copy = copy
        self.first: list[tuple[float, int]] = []  # (time, txn) each time the txn moved
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Applied:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def txn(self) -> int:
        return self.first[-1][1] if self.first else 0

    def _run(self) -> None:
        while not self._stop.is_set():
            txn = read_record(self.copy).txn
            if txn > self.txn():
                self.first.append((time.time(), txn))
            time.sleep(POLL_SECONDS)

    def applied_at(self, txn: int) -> float | None:
        return next((at for at, held in self.first if held >= txn), None)


def replay_round(work: Path, count: int, interval: str) -> dict[str, Any]:
    work.mkdir(parents=True)
    db, copy = work / "mail.db", work / "standby.db"
    new_database(db)
    protector = CPSProtector(db, work)
    with protector:
        subprocess.run([sys.executable, "-m", "cps", "standby", "create", str(protector.repo),
                        "--db", "bench", "--to", str(copy), "--once"], check=True,
                       capture_output=True)
        standby = subprocess.Popen([sys.executable, "-m", "cps", "standby", "run", str(copy),
                                    "--interval", interval], stderr=subprocess.DEVNULL)
        with Applied(copy) as applied:
            record = run_writer(db, count, record=work / "record.json")
            last = protector.ready_txn + count
            deadline = time.monotonic() + 60
            while applied.txn() < last and time.monotonic() < deadline:
                time.sleep(0.05)
        standby.send_signal(signal.SIGTERM)
        _pid, status, usage = os.wait4(standby.pid, 0)
        standby.returncode = os.waitstatus_to_exitcode(status)
    lags = [at - commit for k, commit in enumerate(record["commits"])
            if (at := applied.applied_at(protector.ready_txn + 1 + k)) is not None]
    seconds = record["commits"][-1] - record["commits"][0]
    result = {"deliveries": count, "matched": len(lags), "rate": round(count / seconds, 1),
              "p50": round(percentile(lags, 0.5), 3), "p99": round(percentile(lags, 0.99), 3),
              "max": round(max(lags), 3), "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 2),
              "cpu_ms_per_delivery": round(1000 * (usage.ru_utime + usage.ru_stime) / count, 3),
              "load": round(load(), 2)}
    print(f"  replay p50 {result['p50']} p99 {result['p99']} max {result['max']} "
          f"cpu {result['cpu_ms_per_delivery']} ms/delivery, {result['rate']}/s, "
          f"load {result['load']}", file=sys.stderr, flush=True)
    return result


def seeded_copy(repo_path: Path, work: Path) -> tuple[Path, int, int]:
    """A standby copy of bench/granular.py's database at its point "work"; the transactions of
    "work" and "end"."""
    repo = Repository.open(repo_path)
    db_id = repo.databases()[0].db_id
    points = {p.name: p for p in repo.points(db_id)[0]}
    copy = work / "seed" / "standby.db"
    copy.parent.mkdir(parents=True)
    hour = 3_600_000
    begin(repo, db_id, copy, repository=str(repo_path), lag_ms=hour, now_ms=0)
    held = replay(repo, copy, points["work"].created_at + hour).record
    assert held.txn == points["work"].txn, (held.txn, points["work"].txn)
    return copy, points["work"].txn, points["end"].txn


def promote_once(seed: Path, place: Path, repo: Path, target: int, cold: bool) -> float:
    place.mkdir(parents=True)
    copy = place / "standby.db"
    shutil.copyfile(seed, copy)
    shutil.copyfile(record_path(seed), record_path(copy))
    if cold:
        drop_caches()
    started = time.monotonic()
    out = subprocess.run([sys.executable, "-m", "cps", "standby", "promote", str(copy),
                          "--repo", str(repo), "--txn", str(target), "--json"],
                         check=True, capture_output=True, text=True)
    seconds = time.monotonic() - started
    assert json.loads(out.stdout)["txn"] == target
    shutil.rmtree(place)
    return seconds


def measure_promote(repo: Path, root: Path, rounds: int) -> dict[str, Any]:
    seed, work_txn, end_txn = seeded_copy(repo, root)
    log_bytes = sum(f.stat().st_size for f in repo.rglob("*.seg"))
    results: dict[str, list[float]] = {}
    for number in range(rounds):
        for name, target in (("no log", work_txn), ("log to end", end_txn)):
            for cold in (False, True):
                key = f"{name}, {'cold' if cold else 'warm'}"
                seconds = promote_once(seed, root / f"round-{number}", repo, target, cold)
                results.setdefault(key, []).append(seconds)
                print(f"  promote {key}: {seconds:.3f} s, load {load():.2f}", file=sys.stderr,
                      flush=True)
    return {"database_bytes": seed.stat().st_size, "log_transactions": end_txn - work_txn,
            "segment_bytes_in_repository": log_bytes,
            "seconds": {k: spread(v) for k, v in results.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("part", choices=("replay", "promote"))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--interval", default="500ms")
    parser.add_argument("--repo", type=Path, default=DEFAULT_REPO)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cps-bench-standby-") as folder:
        root = Path(folder)
        result: dict[str, Any] = {"machine": machine(root), "part": args.part}
        if args.part == "replay":
            runs = [replay_round(root / f"round-{n}", args.count, args.interval)
                    for n in range(args.rounds)]
            result.update(interval=args.interval, runs=runs,
                          p99=spread([r["p99"] for r in runs]),
                          cpu_ms_per_delivery=spread([r["cpu_ms_per_delivery"] for r in runs]))
        else:
            result.update(measure_promote(args.repo, root, args.rounds))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
