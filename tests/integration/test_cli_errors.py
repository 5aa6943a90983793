"""What every `cps` command does when it is given something it cannot use: a path that cannot be
read or written, a repository given as a URL, arguments click cannot parse. The commands are walked
from the click group, so a new one is covered (or the test says what it needs); each runs as a
real process."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import click
import pytest

from tests.cli_commands import Value, command_line, commands, takes_a_path, with_path
from tests.conftest import CPS, run_cps
from tests.integration.protect_helpers import DEADLINE_SECONDS, protected_store
from tests.mounts import read_only_view

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
    (["restore", "--latest", "--to", "x.db"], "missing argument 'REPO'",
     "Give REPO, or --server URL --token-file FILE to ask a running CPS server."),
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


# A bad path ends in a `cps: error [...]` line, never in a traceback

ALICE = "alice@example.com"
INBOX = f"{ALICE}/Inbox"
MAIL = {ALICE: [b"From: Carol <carol@example.org>\r\nSubject: Budget %d\r\n\r\nFigures.\r\n" % n
                for n in range(3)]}

# Paths the fixture provides, by the placeholders the invocations below use.
DB, REPO, MESSAGE, CONFIG, STANDBY = "<db>", "<repo>", "<message>", "<config>", "<standby>"
NEW_REPO, NEW_FILE, NEW_FOLDER = "<new repo>", "<new file>", "<new folder>"
POINT: dict[str, Value] = {"words": (REPO,), "latest": True}

# A command line that works, for every command: parameter values by parameter name. A command
# whose options exclude each other has one line per choice.
INVOCATIONS: dict[str, list[dict[str, Value]]] = {
    "cps browse": [POINT],
    "cps drill": [{"repo_path": REPO}],
    "cps diff": [{"words": (REPO,), "from_point": "latest", "to_point": "latest"},
                 {"words": (REPO,), "from_point": "latest", "live_db": DB}],
    "cps protect": [{"db": DB, "repo_path": REPO}],
    "cps prune": [{"repo_path": REPO, "dry_run": True}],
    "cps quickstart": [{"folder": NEW_FOLDER}],
    "cps recover": [{**POINT, "mailbox": ALICE, "live_db": DB},
                    {**POINT, "mailbox": ALICE, "export_to": ("mbox", NEW_FOLDER)}],
    "cps recovery-point create": [{"db": DB, "repo_path": REPO}],
    "cps recovery-point keep": [{"words": (REPO, "before upgrade")}],
    "cps repo copy": [{"source": REPO, "destination": NEW_REPO}],
    "cps repo init": [{"path": NEW_REPO}],
    "cps restore": [{"repo_path": REPO, "output_path": NEW_FILE, "latest": True}],
    "cps search": [POINT],
    "cps server status": [{"server": "http://127.0.0.1:9", "token_file": MESSAGE}],
    "cps server token create": [{"config_path": CONFIG, "name": "monitoring", "role": "auditor"}],
    "cps server token list": [{"config_path": CONFIG}],
    "cps server token revoke": [{"config_path": CONFIG, "token_id": "0123456789ab"}],
    "cps show": [{"words": (REPO, INBOX, "1"), "latest": True}],
    "cps store create": [{"db": NEW_FILE}],
    "cps store dump": [{"db": DB}],
    "cps store export": [{"db": DB, "mailbox_path": ALICE, "destination": NEW_FOLDER,
                          "kind": "mbox"}],
    "cps store folder create": [{"db": DB, "mailbox_path": f"{ALICE}/Projects"}],
    "cps store folder delete": [{"db": DB, "mailbox_path": f"{ALICE}/Projects"}],
    "cps store folder rename": [{"db": DB, "mailbox_path": f"{ALICE}/Projects",
                                 "new_path": "Archive"}],
    "cps store import": [{"db": DB, "source": MESSAGE, "address": ALICE}],
    "cps store ls": [{"db": DB}],
    "cps store mailbox create": [{"db": DB, "address": "dave@example.com"}],
    "cps store mailbox delete": [{"db": DB, "address": "dave@example.com"}],
    "cps store mailbox list": [{"db": DB}],
    "cps store message delete": [{"db": DB, "mailbox_path": INBOX, "uids": ("1",)}],
    "cps store message flag": [{"db": DB, "mailbox_path": INBOX, "uids": ("1",), "add": "\\Seen"}],
    "cps store message move": [{"db": DB, "mailbox_path": INBOX, "uids": ("1",),
                                "destination": "Archive"}],
    "cps store serve": [{"databases": (DB,)}],
    "cps store show": [{"db": DB, "mailbox_path": INBOX, "uid": "1"}],
    "cps store stats": [{"db": DB}],
    "cps store workload": [{"db": DB, "ops": "1"}],
    "cps timeline": [{"repo_path": REPO}],
    "cps verify repo": [{"repo_path": REPO}],
    "cps verify store": [{"db": DB}],
    "cps standby create": [{"repo_path": REPO, "copy": NEW_FILE, "once": True}],
    "cps standby promote": [{"copy": STANDBY, "repo_path": REPO}],
    "cps standby run": [{"copy": STANDBY, "repo_path": REPO, "once": True}],
    "cps standby status": [{"copy": STANDBY}],
}


@dataclass(frozen=True, slots=True)
class Setup:
    """A protected mail database, its repository, a standby copy of it, a server configuration
    for them, a message file, and a plain file."""

    db: Path
    repo: Path
    standby: Path
    config: Path
    message: Path
    plain_file: Path

    def line(self, name: str, values: Mapping[str, Value], folder: Path) -> list[str]:
        """The command line of `values`, placeholders made paths (new ones inside `folder`)."""
        paths = {DB: self.db, REPO: self.repo, CONFIG: self.config, MESSAGE: self.message,
                 STANDBY: self.standby,
                 NEW_REPO: folder / "repo", NEW_FILE: folder / "new.db", NEW_FOLDER: folder / "new"}

        def resolve(value: Value) -> Value:
            if isinstance(value, tuple):
                return tuple(paths.get(str(part), part) for part in value)
            return paths.get(value, value) if isinstance(value, str) else value

        return [*name.split()[1:],
                *command_line(COMMANDS[name], {key: resolve(v) for key, v in values.items()})]


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Setup:
    folder = tmp_path_factory.mktemp("cli")
    db, repo = protected_store(folder, MAIL)
    standby = folder / "standby.db"
    run_cps("standby", "create", repo, "--to", standby, "--once")
    config = folder / "cps.toml"
    config.write_text(f'[[database]]\nid = "mail"\npath = "{db}"\nrepository = "{repo}"\n')
    message = folder / "message.eml"
    message.write_bytes(MAIL[ALICE][0])
    plain_file = folder / "plain-file"
    plain_file.write_text("not a folder\n")
    return Setup(db, repo, standby, config, message, plain_file)


@pytest.fixture(scope="module")
def read_only_folder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """An empty folder nobody can write, root included."""
    folder = tmp_path_factory.mktemp("read-only")
    (folder / "empty").mkdir()
    with read_only_view(folder / "empty", folder / "view") as view:
        yield view


def test_every_command_has_an_invocation_here() -> None:
    assert sorted(INVOCATIONS) == sorted(COMMANDS), "add the new command to INVOCATIONS"


@dataclass(frozen=True, slots=True)
class BadPath:
    """A path that cannot be used, and the part of it an error must name."""

    path: Path
    blamed: Path


BAD_PATHS = ("in a missing folder", "below a file", "in a read-only folder")


def bad_path(kind: str, setup: Setup, folder: Path, request: pytest.FixtureRequest) -> BadPath:
    if kind == "in a missing folder":
        return BadPath(folder / "missing" / "x", folder / "missing")
    if kind == "below a file":
        return BadPath(setup.plain_file / "x", setup.plain_file)
    view: Path = request.getfixturevalue("read_only_folder")
    return BadPath(view / "x", view)


@pytest.mark.parametrize("kind", BAD_PATHS)
@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_reports_a_bad_path_as_an_error(name: str, kind: str, setup: Setup,
                                                      tmp_path: Path,
                                                      request: pytest.FixtureRequest) -> None:
    """Each path parameter of the command in turn gets the bad path, everything else being
    right: the command must fail with a CPS error naming the path (a command that makes the
    folders it needs may instead succeed, having made them)."""
    cases = []
    for number, param in enumerate(p for p in COMMANDS[name].params if takes_a_path(p)):
        folder = tmp_path / str(number)
        folder.mkdir()
        bad = bad_path(kind, setup, folder, request)
        values = next((v for v in INVOCATIONS[name] if param.name in v), INVOCATIONS[name][0])
        assert param.name is not None
        changed = {**values, param.name: with_path(param, values.get(param.name, ()), bad.path)}
        cases.append((param, bad, setup.line(name, changed, folder), folder))
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda case: run(case[2], case[3]), cases))
    problems = [_problem(param, bad, line, result, kind)
                for (param, bad, line, _folder), result in zip(cases, results, strict=True)]
    assert [p for p in problems if p] == []


def _problem(param: click.Parameter, bad: BadPath, line: list[str],
             result: subprocess.CompletedProcess[bytes], kind: str) -> str | None:
    shown = f"cps {' '.join(line)} (a path {kind} for {param.name})"
    err = result.stderr.decode(errors="replace")
    if "Traceback" in err:
        return f"{shown} ended in a traceback:\n{err}"
    if result.returncode == 0:
        made = kind == "in a missing folder" and bad.path.exists()
        return None if made else f"{shown} succeeded"
    if result.returncode == 1 or not err.startswith("cps: error ["):
        return f"{shown} exited {result.returncode} without a CPS error:\n{err}"
    if str(bad.blamed) not in err:
        return f"{shown} does not name {bad.blamed}:\n{err}"
    return None


# A repository given as a URL CPS cannot use is refused before anything is made, and a secret in
# it is never shown

REPOSITORIES = (REPO, NEW_REPO)


def _with_url(value: Value, url: str) -> Value:
    """`value` with a repository placeholder in it (alone, or first of REPO NAME...) made `url`."""
    if isinstance(value, tuple):
        return tuple(url if part in REPOSITORIES else part for part in value)
    return url if value in REPOSITORIES else value


@pytest.mark.parametrize("name", sorted(
    name for name, lines in INVOCATIONS.items()
    if any(_with_url(value, "url") != value for value in lines[0].values())))
def test_every_repository_path_refuses_a_url_it_cannot_use(name: str, setup: Setup,
                                                            tmp_path: Path) -> None:
    url = "https://backup:hunter2@storage.example/cps"
    values = {key: _with_url(value, url) for key, value in INVOCATIONS[name][0].items()}
    result = run(setup.line(name, values, tmp_path), tmp_path)
    assert result.stderr.decode().splitlines() == [
        "cps: error [usage]: unsupported repository URL https://storage.example/cps",
        "hint: Give a local folder, or s3://bucket/prefix.",
    ]
    assert result.returncode == 2
    assert list(tmp_path.iterdir()) == []


# Help that promises only what there is


def test_repo_help_says_what_there_is() -> None:
    summary = run_cps("repo", "--help").stdout.decode().split("Options:")[0]
    assert "inspect" not in summary
    assert "'cps repo init'" in summary
