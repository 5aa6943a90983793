"""Protection into a bucket: capture lag to the bucket, upload volume and the writer's throughput,
for CPS (`cps protect` with its repository in a bucket, written through its upload spool) and
Litestream (replicating to the same bucket), in the same run, on one local SeaweedFS started for
the run (the tests' tests/s3_server.py).

    .venv/bin/python bench/protect_bucket.py [--quick] [--rounds N] [--only lag|throughput]
                                            [--out FILE]

Both reach SeaweedFS through one HTTP proxy of this process (the tests' tests/s3_proxy.py), which
counts the bytes of every request body it passes on: the upload volume, overwrites and
compactions included. It adds the same small latency to both.

* lag: bench/writer.py delivers at RATE messages a second (one per transaction) for DURATION
  seconds into a copy of a seeded database, at a 1 s sync interval (Litestream's monitor-interval
  and sync-interval both 1 s). A thread lists each protector's new objects every POLL_SECONDS and
  notes when each name first appeared (an object is visible only whole); the lag of a commit is
  first-seen(object holding it) - commit time, matched as bench/protect_lag.py does (CPS: by
  transaction number in the segment's name; Litestream: by WAL range in the LTX header, read from
  the object). Upload volume per hour: bytes sent through the proxy during the run, / its length
  x 3600.
* throughput: bench/writer.py flat out, THROUGHPUT_COUNT deliveries into a copy of the seeded
  database, unprotected, under CPS and under Litestream, in a rotating order each round, both
  reaching SeaweedFS directly (not through the proxy, whose relaying would take CPU from the
  writer); the ratio protected/unprotected is taken within a round.

Everything lives in a temporary folder, removed at the end. Results are printed as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from common import REPOSITORY, copy_database, load, machine, new_database, percentile, run_writer, spread
from protect_lag import LTX_HEADER, FirstSeen, seen_lags
from protectors import LITESTREAM, CPSProtector, LitestreamProtector, Protector

sys.path.insert(0, str(REPOSITORY))
from tests import s3_server  # noqa: E402  (the repository root, put on the path above)
from tests.s3_proxy import Faults, s3_proxy  # noqa: E402

POLL_SECONDS = 0.02
RATE = 50.0
DURATION = 60
THROUGHPUT_COUNT = 20_000
SEGMENTS = "databases/bench/chains/00000001/segments/"
LITESTREAM_L0 = "0000/"  # level 0 LTX files, in an S3 replica


class BucketWatcher(FirstSeen):
    """protect_lag.FirstSeen of a prefix of the bucket instead of a folder."""

    poll_seconds = POLL_SECONDS

    def __init__(self, server: s3_server.S3Server, prefix: str, read_ltx: bool) -> None:
        super().__init__(Path(prefix), read_ltx)
        self.client = server.client()
        self.prefix = prefix

    def names(self) -> list[str]:
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=s3_server.BUCKET,
                                                                      Prefix=self.prefix)
        return [item["Key"][len(self.prefix):] for page in pages
                for item in page.get("Contents", [])]

    def header(self, name: str) -> bytes | None:
        answer = self.client.get_object(Bucket=s3_server.BUCKET, Key=self.prefix + name,
                                        Range=f"bytes=0-{LTX_HEADER.size - 1}")
        return bytes(answer["Body"].read())


class BucketCPS(CPSProtector):
    """`cps protect` into s3://BUCKET/<prefix>."""

    def __init__(self, db: Path, work: Path, prefix: str, endpoint: str) -> None:
        super().__init__(db, work, "1s")
        self.url = f"s3://{s3_server.BUCKET}/{prefix}"
        self.endpoint = endpoint

    def prepare(self) -> None:
        run_cps("repo", "init", self.url, "--s3-endpoint-url", self.endpoint)

    def command(self) -> list[str]:
        return [sys.executable, "-m", "cps", "protect", str(self.db), "--repo", self.url,
                "--s3-endpoint-url", self.endpoint, "--db-id", "bench", "--json",
                "--sync-interval", self.sync_interval, "--recovery-point-every", "off"]

    def status(self) -> dict[str, Any]:
        return dict(json.loads(run_cps("timeline", self.url, "--db", "bench", "--json")))


class BucketLitestream(LitestreamProtector):
    """`litestream replicate` to s3://BUCKET/<prefix>."""

    def __init__(self, db: Path, work: Path, server: s3_server.S3Server, endpoint: str,
                 prefix: str) -> None:
        super().__init__(db, work, "1s")
        self.client = server.client()
        self.endpoint = endpoint
        self.prefix = prefix

    def replica_settings(self) -> list[str]:
        return ["type: s3", f"bucket: {s3_server.BUCKET}", f"path: {self.prefix}",
                f"endpoint: {self.endpoint}", f"region: {s3_server.REGION}",
                "force-path-style: true", f"access-key-id: {s3_server.ACCESS_KEY}",
                f"secret-access-key: {s3_server.SECRET_KEY}"]

    def ready(self) -> bool:
        answer = self.client.list_objects_v2(Bucket=s3_server.BUCKET,
                                             Prefix=f"{self.prefix}/{LITESTREAM_L0}", MaxKeys=1)
        return bool(answer.get("Contents"))


def run_cps(*arguments: str) -> str:
    return subprocess.run([sys.executable, "-m", "cps", *arguments], check=True,
                          capture_output=True, text=True).stdout


def protector_for(tool: str, db: Path, work: Path, server: s3_server.S3Server, endpoint: str,
                  prefix: str) -> Protector:
    if tool == "cps":
        return BucketCPS(db, work, prefix, endpoint)
    return BucketLitestream(db, work, server, endpoint, prefix)


def lag_run(tool: str, seed_db: Path, work: Path, server: s3_server.S3Server, endpoint: str,
            faults: Faults, count: int) -> dict[str, Any]:
    work.mkdir(parents=True)
    db = work / "mail.db"
    copy_database(seed_db, db)
    prefix = f"{work.name}"
    watched = f"{prefix}/{SEGMENTS}" if tool == "cps" else f"{prefix}/{LITESTREAM_L0}"
    result: dict[str, Any] = {"tool": tool, "load_before": round(load(), 2)}
    with protector_for(tool, db, work, server, endpoint, prefix) as protector, \
            BucketWatcher(server, watched, tool == "litestream") as watcher:
        sent_before = faults.sent_bytes
        record = run_writer(db, count, rate=RATE, record=work / "record.json")
        lags = seen_lags(protector, record, watcher, db, count, 60)
        seconds = record["commits"][-1] - record["commits"][0]
        sent = faults.sent_bytes - sent_before
    found = [lag for lag in lags if lag is not None]
    result.update(commits=count, matched=len(found), objects=len(watcher.seen),
                  p50=round(percentile(found, 0.5), 4), p99=round(percentile(found, 0.99), 4),
                  max=round(max(found), 4), uploaded_mib_per_hour=round(
                      sent / seconds * 3600 / 2**20, 1), load_after=round(load(), 2))
    print(f"  lag {tool:10} p50 {result['p50']:.3f} p99 {result['p99']:.3f} max "
          f"{result['max']:.3f} matched {len(found)}/{count} upload "
          f"{result['uploaded_mib_per_hour']} MiB/h load {result['load_after']}",
          file=sys.stderr, flush=True)
    return result


def throughput_run(tool: str, seed_db: Path, work: Path, server: s3_server.S3Server,
                   endpoint: str, count: int) -> dict[str, Any]:
    work.mkdir(parents=True)
    db = work / "mail.db"
    copy_database(seed_db, db)
    result: dict[str, Any] = {"tool": tool, "load_before": round(load(), 2)}
    if tool == "unprotected":
        summary = run_writer(db, count)
    else:
        with protector_for(tool, db, work, server, endpoint, work.name):
            summary = run_writer(db, count)
    result.update(per_second=round(count / summary["elapsed"], 1), load_after=round(load(), 2))
    print(f"  throughput {tool:12} {result['per_second']}/s load {result['load_after']}",
          file=sys.stderr, flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="10 s lag runs, 2,000 deliveries")
    parser.add_argument("--only", choices=("lag", "throughput"))
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    count = int(RATE * (10 if args.quick else DURATION))
    deliveries = 2000 if args.quick else THROUGHPUT_COUNT
    with tempfile.TemporaryDirectory(prefix="cps-bench-bucket-") as folder:
        root = Path(folder)
        host = machine(root)
        with s3_server.running(root / "seaweedfs") as server, \
                s3_proxy(server.endpoint_url) as (endpoint, faults):
            os.environ.update({**server.environment(), "CPS_S3_ENDPOINT_URL": endpoint,
                               "CPS_STATE_DIR": str(root / "state")})
            # The endpoint is plain HTTP on loopback; Litestream refuses to start with a CA
            # bundle it cannot install in its HTTP client.
            os.environ.pop("AWS_CA_BUNDLE", None)
            seed_db = root / "seed.db"
            new_database(seed_db)
            run_writer(seed_db, 2000, fast=True)  # not empty: a realistic b-tree depth
            lags, rates = [], []
            for number in range(args.rounds):
                print(f"round {number + 1}/{args.rounds}", file=sys.stderr)
                tools = ("cps", "litestream") if number % 2 == 0 else ("litestream", "cps")
                for tool in tools if args.only != "throughput" else ():
                    lags.append({"round": number, **lag_run(
                        tool, seed_db, root / f"lag-{number}-{tool}", server, endpoint, faults,
                        count)})
                order = ("unprotected", "cps", "litestream")
                for tool in order[number % 3:] + order[:number % 3] if args.only != "lag" else ():
                    # Straight to SeaweedFS: the counting proxy is for the upload volume, and
                    # would take CPU from the writer on this machine.
                    rates.append({"round": number, **throughput_run(
                        tool, seed_db, root / f"rate-{number}-{tool}", server,
                        server.endpoint_url, deliveries)})
    results = {"machine": host, "litestream": LITESTREAM.name,
               "rate_per_second": RATE, "commits_per_lag_run": count,
               "deliveries_per_throughput_run": deliveries, "lag_runs": lags,
               "throughput_runs": rates, "summary": summarise(lags, rates)}
    text = json.dumps(results, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text)


def summarise(lags: list[dict[str, Any]], rates: list[dict[str, Any]]) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for tool in ("cps", "litestream"):
        mine = [r for r in lags if r["tool"] == tool]
        summary[tool] = {key: spread([r[key] for r in mine], 4)
                         for key in ("p50", "p99", "max", "uploaded_mib_per_hour") if mine}
        by_round = {(r["round"], r["tool"]): r["per_second"] for r in rates}
        if rates:
            summary[tool]["throughput_ratio"] = spread([
                by_round[(n, tool)] / by_round[(n, "unprotected")]
                for n in {r["round"] for r in rates}])
    if rates:
        summary["unprotected_per_second"] = spread([r["per_second"] for r in rates
                                                    if r["tool"] == "unprotected"])
    return summary


if __name__ == "__main__":
    main()
