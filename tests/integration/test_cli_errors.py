"""What every `cps` command does when it is given arguments click cannot parse. The commands
are walked from the click group, so a new one is covered; each runs as a real process."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.cli_commands import commands
from tests.conftest import CPS, run_cps
from tests.integration.protect_helpers import DEADLINE_SECONDS

COMMANDS = dict(commands())


def run(line: list[str], cwd: Path) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([*CPS, *line], cwd=cwd, capture_output=True, stdin=subprocess.DEVNULL,
                          timeout=DEADLINE_SECONDS)


# click's own usage errors look like every other error


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_reports_an_unknown_option_as_a_usage_error(name: str) -> None:
    result = run_cps(*name.split()[1:], "--zzz", check=False)
    lines = result.stderr.decode().splitlines()
    assert result.returncode == 2
    assert len(lines) == 2 and lines[0] == "cps: error [usage]: no such option '--zzz'"
    assert lines[1].startswith("hint: ") and lines[1].endswith(f"Run '{name} --help' for its options.")


@pytest.mark.parametrize("args, error, hint", [
    (["restore"], "missing argument 'REPO'", "Run 'cps restore --help' for its options."),
    (["restore", "repo", "--to", "x.db", "--txn", "ten"],
     "invalid value for '--txn': 'ten' is not a valid integer",
     "Run 'cps restore --help' for its options."),
    (["restore", "repo", "--forc"], "no such option '--forc'",
     "Did you mean --force or --to? Run 'cps restore --help' for its options."),
    (["restor"], "no such command 'restor'", "Run 'cps --help' for its commands."),
    (["store", "mailbox", "nothing"], "no such command 'nothing'",
     "Run 'cps store mailbox --help' for its commands."),
])
def test_usage_errors_say_what_is_wrong_and_where_the_help_is(args: list[str], error: str, hint: str,
                                                              tmp_path: Path) -> None:
    result = run(args, tmp_path)
    assert result.stderr.decode().splitlines() == [f"cps: error [usage]: {error}", f"hint: {hint}"]
    assert result.returncode == 2


@pytest.mark.parametrize("group", [[], ["store"], ["repo"]])
def test_a_group_without_a_command_shows_its_help(group: list[str]) -> None:
    result = run_cps(*group, check=False)
    assert result.returncode == 2
    assert result.stderr.decode().startswith(f"Usage: {' '.join(['cps', *group])} [OPTIONS] COMMAND")
