"""Fixtures shared by every test: a fresh mail database, the real-mail corpus, the `cps` command."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from cps.store import MailDatabase

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
