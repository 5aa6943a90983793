"""Restore of the ~1.2 GB benchmark database from an S3 bucket: `cps restore` from the bucket against
`cps restore` from the local folder and `litestream restore` from the same bucket, cold.

    .venv/bin/python bench/s3_restore.py [--repo DIR] [--rounds N] [--json FILE]

A SeaweedFS server (the tests' tests/s3_server.py) runs on loopback with its data on the same disk.
bench/granular.py's repository is copied into it with `cps repo copy`; Litestream replicates a copy
of the same database (its state at the repository's latest transaction) into the same bucket under
a prefix of its own, and is stopped once `litestream restore` from the bucket gives a database that
passes `PRAGMA quick_check`. Then each round, in an order that rotates, drops the page cache and
runs each restore of the latest state as its own process: wall time, and the process's largest
resident set (wait4). Every CPS restore must be byte for byte the restore from the folder.
Litestream restores are checked with `PRAGMA quick_check` outside the timing (CPS runs
`PRAGMA integrity_check` inside it).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import REPOSITORY, drop_caches, granular_arguments, load, machine, spread
from protectors import LITESTREAM

sys.path.insert(0, str(REPOSITORY))
from tests import s3_server  # noqa: E402  (the repository root, put on the path above)

LITESTREAM_PREFIX = "litestream"
CPS_PREFIX = "cps"
READY_SECONDS = 900.0  # Litestream's first snapshot of 1.2 GB into the bucket


def run(command: list[str], environment: dict[str, str]) -> tuple[float, float]:
    """Wall seconds and largest resident set (MiB) of one process, which must succeed."""
    started = time.perf_counter()
    process = subprocess.Popen(command, env=environment, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE)
    _pid, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    assert process.stderr is not None
    errors = process.stderr.read().decode(errors="replace")
    process.stderr.close()
    if process.returncode != 0:
        raise RuntimeError(f"{command[:4]} exited {process.returncode}: {errors[-2000:]}")
    return seconds, usage.ru_maxrss / 1024


def litestream_config(work: Path, db: Path, server: s3_server.S3Server) -> Path:
    config = work / "litestream.yml"
    config.write_text(
        "dbs:\n"
        f"  - path: {db}\n"
        "    replica:\n"
        "      type: s3\n"
        f"      bucket: {s3_server.BUCKET}\n"
        f"      path: {LITESTREAM_PREFIX}\n"
        f"      endpoint: {server.endpoint_url}\n"
        f"      region: {s3_server.REGION}\n"
        "      force-path-style: true\n"
        f"      access-key-id: {s3_server.ACCESS_KEY}\n"
        f"      secret-access-key: {s3_server.SECRET_KEY}\n")
    return config


def replicate_with_litestream(work: Path, source_db: Path, server: s3_server.S3Server,
                              environment: dict[str, str]) -> tuple[Path, Path]:
    """The database replicated into the bucket by Litestream; its config and database path."""
    db = work / "litestream" / "mail.db"
    db.parent.mkdir()
    shutil.copyfile(source_db, db)
    config = litestream_config(work, db, server)
    with (work / "litestream.log").open("wb") as log:
        replicator = subprocess.Popen([str(LITESTREAM), "replicate", "-config", str(config)],
                                      stdout=log, stderr=subprocess.STDOUT, env=environment)
    probe = work / "probe.db"
    deadline = time.monotonic() + READY_SECONDS
    try:
        while not _restores(config, db, probe, environment):
            if time.monotonic() > deadline or replicator.poll() is not None:
                raise RuntimeError("Litestream did not replicate the database; see its log "
                                   f"{work / 'litestream.log'}")
            time.sleep(2)
    finally:
        replicator.terminate()
        replicator.wait(timeout=120)
    return config, db


def _restores(config: Path, db: Path, out: Path, environment: dict[str, str]) -> bool:
    _remove(out)
    done = subprocess.run([str(LITESTREAM), "restore", "-config", str(config), "-o", str(out),
                           str(db)], env=environment, capture_output=True)
    return done.returncode == 0 and _quick_check(out)


def _quick_check(db: Path) -> bool:
    connection = sqlite3.connect(f"file:{db}?immutable=1", uri=True)
    try:
        return [row[0] for row in connection.execute("PRAGMA quick_check")] == ["ok"]
    finally:
        connection.close()


def _remove(db: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def main() -> None:
    args = granular_arguments(__doc__.splitlines()[0], "repo",
                              Path("/tmp/cps-bench-granular/repo"))
    source_db = args.repo.parent / "mail.db"
    work = Path(tempfile.mkdtemp(prefix="cps-bench-s3-restore-"))
    server = s3_server.start(work / "seaweedfs")
    environment = {**os.environ, **server.environment()}
    # Litestream's AWS SDK refuses a custom CA bundle for a plain-HTTP endpoint; CPS ignores it.
    environment.pop("AWS_CA_BUNDLE", None)
    try:
        subprocess.run([sys.executable, "-m", "cps", "repo", "copy", str(args.repo),
                        f"s3://{s3_server.BUCKET}/{CPS_PREFIX}"], check=True, env=environment,
                       capture_output=True)
        config, lt_db = replicate_with_litestream(work, source_db, server, environment)
        out = work / "restored.db"
        commands = {
            "cps, folder": [sys.executable, "-m", "cps", "restore", str(args.repo), "--latest",
                            "--to", str(out)],
            "cps, bucket": [sys.executable, "-m", "cps", "restore",
                            f"s3://{s3_server.BUCKET}/{CPS_PREFIX}", "--latest", "--to", str(out)],
            "litestream, bucket": [str(LITESTREAM), "restore", "-config", str(config), "-o",
                                   str(out), str(lt_db)],
        }
        seconds: dict[str, list[float]] = {name: [] for name in commands}
        rss: dict[str, list[float]] = {name: [] for name in commands}
        expected: str | None = None
        names = list(commands)
        for number in range(args.rounds):
            for name in names[number % len(names):] + names[:number % len(names)]:
                _remove(out)
                drop_caches()
                took, resident = run(commands[name], environment)
                seconds[name].append(took)
                rss[name].append(resident)
                if name.startswith("cps"):
                    digest = _sha256(out)
                    expected = expected or digest
                    assert digest == expected, f"{name} restored other bytes"
                else:
                    assert _quick_check(out), "litestream's restore fails quick_check"
                print(f"  {name}: {took:.2f} s, {resident:.0f} MiB, load {load():.2f}",
                      file=sys.stderr, flush=True)
        folder = spread(seconds["cps, folder"])["median"]
        bucket = spread(seconds["cps, bucket"])["median"]
        peer = spread(seconds["litestream, bucket"])["median"]
        result: dict[str, Any] = {
            "machine": machine(work), "database_bytes": source_db.stat().st_size,
            "seconds": {name: spread(values) for name, values in seconds.items()},
            "max_rss_mib": {name: spread(values, 0) for name, values in rss.items()},
            "bucket_over_folder": round(bucket / folder, 2),
            "litestream_over_cps_bucket": round(peer / bucket, 2),
        }
    finally:
        s3_server.stop(server)
        shutil.rmtree(work, ignore_errors=True)
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text)


if __name__ == "__main__":
    main()
