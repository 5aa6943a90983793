"""Capture lag, end to end: from a transaction's commit to the first instant the repository file
holding it exists, for CPS and for Litestream, at two sync intervals.

A writer (bench/writer.py) delivers at a steady rate, one message per transaction, and records the
time each COMMIT returned and the WAL position of the commit (wal-index header: salts, mxFrame).
Meanwhile a thread here lists the repository's new files every POLL_SECONDS and notes the time each
name first appeared (files are renamed into place whole, so a name that exists is complete):

* CPS: segments/<first txn>-<last txn>-....seg. Only the writer writes, so its k-th commit is
  transaction ready_txn + k (ready_txn from the protector's "ready" event); this is checked against
  the protector's last transaction when it stops.
* Litestream: replica/ltx/0/<min>-<max>.ltx, whose 100-byte LTX header gives the WAL range it holds
  (WALOffset, WALSize, WALSalt1, WALSalt2). Commit k is in the first such file of the same WAL
  generation whose range ends at or after the end of k's commit frame. The writer reads mxFrame just
  after its commit, so a write Litestream slips in between can only make a lag look longer.

The lag of a commit is first-seen(file holding it) - commit time. Both clocks are time.time() on
this machine. CPS's own figure (from the status file, via `cps timeline --json`) is measured from
the first time its poll saw the transaction, so it leaves out up to one poll interval.
"""

from __future__ import annotations

import os
import struct
import sys
import threading
import time
from pathlib import Path
from typing import Any

from common import copy_database, new_database, percentile, run_writer, spread
from cps.repository.naming import parse_segment
from protectors import CPSProtector, LitestreamProtector, Protector, wait_for

POLL_SECONDS = 0.002
WAL_HEADER = 32
FRAME_HEADER = 24
LTX_HEADER = struct.Struct(">4sIIIQQqQqqII")  # magic .. WALSalt2 (ltx.Header.MarshalBinary)
INTERVALS = (("1s", 1.0), ("100ms", 0.1))
RATE = 50.0  # deliveries a second


class FirstSeen:
    """Polls a folder in a thread; remembers when each new name first appeared (and, for LTX
    files, their header)."""

    poll_seconds = POLL_SECONDS

    def __init__(self, folder: Path, read_ltx: bool) -> None:
        self.folder = folder
        self.read_ltx = read_ltx
        self.seen: dict[str, float] = {}
        self.headers: dict[str, tuple[int, int, int, int]] = {}  # salt1, salt2, offset, size
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> FirstSeen:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            now = time.time()
            for name in self.names():
                if name in self.seen or name.startswith(".") or name.endswith(".tmp"):
                    continue
                self.seen[name] = now
                data = self.header(name) if self.read_ltx else None
                if data is not None:
                    fields = LTX_HEADER.unpack(data)
                    self.headers[name] = (fields[10], fields[11], fields[8], fields[9])
            time.sleep(self.poll_seconds)

    def names(self) -> list[str]:
        try:
            return os.listdir(self.folder)
        except FileNotFoundError:
            return []

    def header(self, name: str) -> bytes | None:
        """The LTX header of file `name`; None when it was compacted away already."""
        try:
            with (self.folder / name).open("rb") as handle:
                return handle.read(LTX_HEADER.size)
        except FileNotFoundError:
            return None


def cps_lags(record: dict[str, Any], seen: dict[str, float], ready_txn: int) -> list[float | None]:
    durable: dict[int, float] = {}
    for name, at in seen.items():
        ref = parse_segment(1, name)
        if ref is not None:
            for txn in range(ref.first_txn, ref.last_txn + 1):
                durable[txn] = min(at, durable.get(txn, at))
    return [durable[ready_txn + 1 + k] - commit if ready_txn + 1 + k in durable else None
            for k, commit in enumerate(record["commits"])]


def litestream_lags(record: dict[str, Any], watcher: FirstSeen, page_size: int
                    ) -> list[float | None]:
    files = sorted(((watcher.seen[n], h) for n, h in watcher.headers.items()), key=lambda f: f[0])
    lags: list[float | None] = []
    for commit, (salt1, salt2, mx_frame) in zip(record["commits"], record["positions"],
                                                 strict=True):
        end = WAL_HEADER + mx_frame * (FRAME_HEADER + page_size)
        match = next((at for at, (s1, s2, offset, size) in files
                      if (s1, s2) == (salt1, salt2) and offset < end <= offset + size), None)
        lags.append(None if match is None else match - commit)
    return lags


def seen_lags(protector: Protector, record: dict[str, Any], watcher: FirstSeen, db: Path,
              count: int, timeout: float) -> list[float | None]:
    """Once the file holding the last of `count` commits is seen, the lag of each commit."""
    if isinstance(protector, CPSProtector):
        target = protector.ready_txn + count
        wait_for(lambda: any((r := parse_segment(1, n)) and r.last_txn >= target
                             for n in list(watcher.seen)), "last segment", timeout, None)
        return cps_lags(record, watcher.seen, protector.ready_txn)
    page_size = int.from_bytes(db.open("rb").read(18)[16:18], "big")
    wait_for(lambda: litestream_lags(record, watcher, page_size)[-1] is not None,
             "litestream file holding the last commit", timeout, None)
    return litestream_lags(record, watcher, page_size)


def one_lag_run(tool: str, seed_db: Path, work: Path, interval: str, count: int
                ) -> dict[str, Any]:
    work.mkdir(parents=True)
    db = work / "mail.db"
    copy_database(seed_db, db)
    protector: Protector
    if tool == "cps":
        protector = CPSProtector(db, work, interval)
        folder, read_ltx = protector.segments_dir(), False
    else:
        protector = LitestreamProtector(db, work, interval)
        folder, read_ltx = protector.l0_dir(), True
    result: dict[str, Any] = {"tool": tool, "interval": interval}
    with protector, FirstSeen(folder, read_ltx) as watcher:
        record = run_writer(db, count, rate=RATE, record=work / "record.json")
        last = record["commits"][-1]
        lags = seen_lags(protector, record, watcher, db, count, 30)
        if isinstance(protector, CPSProtector):
            wait_for(lambda: (protector.status().get("protector") or {}).get("updated_at", 0)
                     > last * 1000 + 1100, "status after the last commit", 30, None)
            status = protector.status()["protector"]
            result["cps_status_lag_p50"] = status.get("lag_p50")
            result["cps_status_lag_p99"] = status.get("lag_p99")
    if isinstance(protector, CPSProtector):
        stopped = [e["txn"] for e in protector.events if e.get("event") == "stopped"]
        result["txns_as_expected"] = stopped == [protector.ready_txn + count]
    found = [lag for lag in lags if lag is not None]
    result.update(commits=count, matched=len(found), files=len(watcher.seen),
                  p50=round(percentile(found, 0.5), 4), p99=round(percentile(found, 0.99), 4),
                  max=round(max(found), 4), negative=sum(1 for lag in found if lag < 0))
    print(f"  {tool:10} {interval:5} p50 {result['p50']:.3f} p99 {result['p99']:.3f} "
          f"max {result['max']:.3f} matched {len(found)}/{count}", file=sys.stderr, flush=True)
    return result


def measure_lag(root: Path, rounds: int, quick: bool) -> dict[str, Any]:
    count = int(RATE * (10 if quick else 60))
    seed_db = root / "seed.db"
    new_database(seed_db)
    run_writer(seed_db, 2000, fast=True)  # not empty: a realistic b-tree depth
    runs = []
    for interval, _seconds in INTERVALS:
        for number in range(rounds):
            print(f"lag at {interval}, round {number + 1}/{rounds}", file=sys.stderr)
            tools = ("cps", "litestream") if number % 2 == 0 else ("litestream", "cps")
            for tool in tools:
                runs.append({"round": number, **one_lag_run(
                    tool, seed_db, root / f"lag-{interval}-{number}-{tool}", interval, count)})
    summary: dict[str, Any] = {}
    for interval, _seconds in INTERVALS:
        for tool in ("cps", "litestream"):
            mine = [r for r in runs if r["tool"] == tool and r["interval"] == interval]
            summary[f"{tool}@{interval}"] = {
                key: spread([r[key] for r in mine if r.get(key) is not None], 4)
                for key in ("p50", "p99", "max", "cps_status_lag_p50", "cps_status_lag_p99")}
    return {"rate_per_second": RATE, "commits_per_run": count, "runs": runs, "summary": summary}
