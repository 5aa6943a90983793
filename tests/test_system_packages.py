"""`scripts/system-packages` installs Postfix for the Postfix test only where that cannot remove
another mail transport agent, or under CI=true. Run with stand-ins for `id`, `dpkg-query`,
`debconf-set-selections` and `apt-get` first on PATH, which record what the script asked of them:
the real ones would change this machine."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPOSITORY

SCRIPT = REPOSITORY / "scripts" / "system-packages"
EXIM = "ii |exim4-daemon-light|mail-transport-agent\nii |bash|\n"
NO_MTA = "ii |bash|\nun |postfix|mail-transport-agent\nii |mailutils|mail-reader\n"


def stand_ins(folder: Path, packages: str) -> Path:
    """A folder of stand-in commands; `apt-get` appends its arguments to folder/apt-get.log."""
    folder.mkdir()
    scripts = {
        "id": "echo 0",
        "dpkg-query": f"printf '%s' '{packages}'",
        "debconf-set-selections": "cat >/dev/null",
        "apt-get": f'echo "$*" >> {folder}/apt-get.log',
    }
    for name, body in scripts.items():
        path = folder / name
        path.write_text(f"#!/bin/sh\n{body}\n")
        path.chmod(0o755)
    return folder


def run_script(folder: Path, ci: str | None) -> tuple[subprocess.CompletedProcess[str], str]:
    environment = {key: value for key, value in os.environ.items() if key != "CI"}
    environment["PATH"] = f"{folder}{os.pathsep}{environment['PATH']}"
    if ci is not None:
        environment["CI"] = ci
    result = subprocess.run([SCRIPT], env=environment, capture_output=True, text=True, timeout=60)
    log = folder / "apt-get.log"
    return result, log.read_text() if log.exists() else ""


@pytest.fixture(autouse=True)
def no_mail_system_here() -> None:
    for path in ("/usr/sbin/postfix", "/usr/sbin/sendmail"):
        if os.path.exists(path):
            pytest.skip(f"{path} exists here, so the script's other paths cannot be exercised")


def test_another_mta_is_left_alone_and_the_reason_given(tmp_path: Path) -> None:
    result, apt = run_script(stand_ins(tmp_path / "bin", EXIM), ci=None)
    assert (result.returncode, apt) == (0, "")
    assert "exim4-daemon-light" in result.stderr
    assert "the Postfix test is skipped" in result.stderr


def test_postfix_is_installed_where_no_mta_is_or_under_ci(tmp_path: Path) -> None:
    for name, packages, ci in (("none", NO_MTA, None), ("ci", EXIM, "true")):
        result, apt = run_script(stand_ins(tmp_path / name, packages), ci=ci)
        assert result.returncode == 0, result.stderr
        assert apt.splitlines() == ["update -qq", "install -y -qq --no-install-recommends postfix"]
