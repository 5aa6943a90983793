"""Fixtures shared by every test: a fresh mail database, the real-mail corpus, the `cps` command,
and a real S3 server with a fresh repository prefix in it."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from cps.config import S3Location
from cps.store import MailDatabase
from tests import s3_server as s3
from tests.s3_server import S3Server

REPOSITORY = Path(__file__).resolve().parents[1]
CORPUS = Path(os.environ.get("CPS_CORPUS", REPOSITORY.parent / "shared" / "corpus"))
CPS = [sys.executable, "-m", "cps"]


@pytest.fixture
def corpus() -> Path:
    if not (CORPUS / "README.md").is_file():
        pytest.skip(f"the mail corpus is not at {CORPUS} (set CPS_CORPUS)")
    return CORPUS


@pytest.fixture
def db(tmp_path: Path) -> Iterator[MailDatabase]:
    database = MailDatabase.create(tmp_path / "mail.db")
    database.create_mailbox("alice@example.com", "Alice")
    database.create_mailbox("bob@example.com", "Bob")
    yield database
    database.close()


def run_cps(*args: str | Path, check: bool = True, stdin: bytes | None = None,
            env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[bytes]:
    """Run the real `cps` command in a subprocess and return what it printed."""
    result = subprocess.run(
        [*CPS, *map(str, args)], input=stdin, capture_output=True, timeout=600, env=env
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"cps {' '.join(map(str, args))} exited {result.returncode}:\n"
            f"{result.stderr.decode(errors='replace')}"
        )
    return result


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """A real S3 server (SeaweedFS) for the whole session, started when a test first needs it."""
    with s3.running(tmp_path_factory.mktemp("seaweedfs")) as server:
        yield server


@pytest.fixture
def s3_repository(s3_server: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                  ) -> S3Location:
    """A fresh prefix of the test bucket, as a repository location; this process and the `cps`
    processes it starts reach it through the AWS environment variables, and keep its locks in
    a state folder of the test's own."""
    return bucket_repository(s3_server, tmp_path, monkeypatch)


def bucket_repository(server: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                      endpoint_url: str | None = None) -> S3Location:
    """A fresh prefix of `server`'s test bucket (reached at `endpoint_url`, by default the
    server's own), set up as `s3_repository` says."""
    for name in list(os.environ):
        if name.startswith(("AWS_", "CPS_S3_")):
            monkeypatch.delenv(name)
    endpoint_url = endpoint_url or server.endpoint_url
    for name, value in server.environment().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("CPS_S3_ENDPOINT_URL", endpoint_url)
    monkeypatch.setenv("CPS_STATE_DIR", str(tmp_path / "state"))
    return S3Location(s3.BUCKET, server.new_prefix(), endpoint_url=endpoint_url)
