"""`cps repo copy` of the ~0.9 GB repository of bench/granular.py, folder to folder against
`cp -r`, and folder to a local SeaweedFS against `aws s3 sync`, in the same run.

    python bench/repo_copy.py [--repo /tmp/cps-bench-granular/repo] [--rounds 3] [--json FILE]

The source is only read (the copy takes its shared lock through a read-only descriptor). The
source is read once first, so every measure reads it from a warm page cache. Each round, in this
order: `cp -r` and `cps repo copy` into new folders beside a temporary folder; `aws s3 sync` and
`cps repo copy` into new prefixes of one bucket of a SeaweedFS server started for the run (the
tests' `tests/s3_server.py`); then `cps repo copy` again into the bucket copy, which finds
nothing new. Times are wall times of the processes. MB/s is 10^6 bytes of repository files (locks
left out) a second. Every copy must end with the source's files, byte for byte.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import REPOSITORY, granular_arguments, machine, spread

sys.path.insert(0, str(REPOSITORY))
from tests import s3_server  # noqa: E402  (the repository root, put on the path above)

from cps.repository.naming import key_kind  # noqa: E402


def repository_files(root: Path) -> dict[str, int]:
    return {path.relative_to(root).as_posix(): path.stat().st_size for path in root.rglob("*")
            if path.is_file() and key_kind(path.relative_to(root).as_posix())}


def timed(command: list[str], environment: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True, env=environment)
    return time.perf_counter() - started


def bucket_files(server: s3_server.S3Server, prefix: str) -> dict[str, int]:
    client, found = server.client(), {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=s3_server.BUCKET,
                                                                  Prefix=f"{prefix}/"):
        for item in page.get("Contents", []):
            name = item["Key"].removeprefix(f"{prefix}/")
            if key_kind(name):
                found[name] = item["Size"]
    return found


def main() -> None:
    args = granular_arguments(__doc__.splitlines()[0], "repo", Path("/tmp/cps-bench-granular/repo"))
    source = repository_files(args.repo)
    size = sum(source.values())
    for name in source:  # a warm page cache for every measure
        (args.repo / name).read_bytes()
    cps = [sys.executable, "-m", "cps", "repo", "copy", str(args.repo)]
    with tempfile.TemporaryDirectory(dir=args.repo.parent.parent) as folder:
        work = Path(folder)
        server = s3_server.start(work / "seaweedfs")
        environment = {**os.environ, **server.environment(), "CPS_STATE_DIR": str(work / "state")}
        seconds: dict[str, list[float]] = {name: [] for name in (
            "cp -r", "cps repo copy (folder)", "aws s3 sync", "cps repo copy (bucket)",
            "cps repo copy (bucket, nothing new)")}
        try:
            for round_ in range(args.rounds):
                cp, copied = work / f"cp-{round_}", work / f"cps-{round_}"
                seconds["cp -r"].append(timed(["cp", "-r", str(args.repo), str(cp)], environment))
                seconds["cps repo copy (folder)"].append(timed([*cps, str(copied)], environment))
                assert repository_files(copied) == source == repository_files(cp)
                subprocess.run(["rm", "-rf", str(cp), str(copied)], check=True)
                aws, bucket = f"aws-{round_}", f"cps-{round_}"
                seconds["aws s3 sync"].append(timed(
                    ["aws", "--endpoint-url", server.endpoint_url, "s3", "sync", "--quiet",
                     str(args.repo), f"s3://{s3_server.BUCKET}/{aws}"], environment))
                url = f"s3://{s3_server.BUCKET}/{bucket}"
                seconds["cps repo copy (bucket)"].append(timed([*cps, url], environment))
                seconds["cps repo copy (bucket, nothing new)"].append(timed([*cps, url],
                                                                            environment))
                assert bucket_files(server, bucket) == source == bucket_files(server, aws)
        finally:
            s3_server.stop(server)
        result: dict[str, Any] = {
            "machine": machine(work), "bytes": size, "files": len(source),
            "seconds": {name: spread(values) for name, values in seconds.items()},
            "mb_per_second": {name: spread([size / 1e6 / s for s in values], 1)
                              for name, values in seconds.items() if "nothing" not in name}}
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
