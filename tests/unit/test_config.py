"""The configuration file and the value parsers: typed settings, defaults, inheritance from
[defaults], and errors that name the key and the line."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from cps.config import (
    DATABASE_KEYS,
    DEFAULT_GROUP,
    INTAKE_KEYS,
    SERVER_KEYS,
    Endpoint,
    GroupLimits,
    S3Location,
    S3Options,
    load_config,
    parse_duration,
    parse_duration_or_off,
    parse_endpoint,
    parse_location,
    parse_size,
)
from cps.errors import ConfigError, UsageError

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "cps.example.toml"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "cps.toml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("text, seconds", [("500ms", 0.5), ("15m", 900), ("1h30m", 5400),
                                           ("7d", 604800), ("2w", 1209600), (" 1 s ", 1)])
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "5", "5 minutes", "1x", "ms"])
def test_durations_that_do_not_parse(text: str) -> None:
    with pytest.raises(UsageError, match="as a duration"):
        parse_duration(text)


def test_off_is_none() -> None:
    assert parse_duration_or_off("off") is None and parse_duration_or_off("8h") == 28800


@pytest.mark.parametrize("text, size", [("4096", 4096), ("32MiB", 32 << 20), ("10MB", 10**7),
                                        ("1GiB", 1 << 30)])
def test_sizes(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["0", "-1", "1TiB", "MiB"])
def test_sizes_that_do_not_parse(text: str) -> None:
    with pytest.raises(UsageError):
        parse_size(text)


def test_endpoints() -> None:
    assert parse_endpoint("127.0.0.1:2525") == Endpoint("127.0.0.1", 2525)
    assert parse_endpoint("[::1]:0") == Endpoint("::1", 0) and Endpoint("::1", 0).loopback
    assert not Endpoint("0.0.0.0", 25).loopback
    with pytest.raises(UsageError):
        parse_endpoint("localhost")


@pytest.mark.parametrize("text, location", [
    ("/backup/cps", Path("/backup/cps")), ("backup", Path("backup")),
    ("s3://cps-backups/mail/01/", S3Location("cps-backups", "mail/01")),
    ("s3://cps-backups", S3Location("cps-backups", "")),
    ("S3://cps.backups-2/x", S3Location("cps.backups-2", "x"))])
def test_repository_locations(text: str, location: Path | S3Location) -> None:
    assert parse_location(text) == location


@pytest.mark.parametrize("text, words", [
    ("gs://bucket/x", "unsupported repository URL gs://bucket/x"),
    ("s3://Bucket/x", "invalid bucket name"), ("s3://b/x", "invalid bucket name"),
    ("s3://bucket/a/../b", "invalid prefix"), ("s3://bucket/a b", "invalid prefix"),
    ("s3://key:hunter2@bucket/x", "s3://bucket/x is given with more than s3://bucket/prefix"),
    ("s3://bucket/x?secret=hunter2", "s3://bucket/x is given with more than")])
def test_repository_urls_that_cannot_be_used(text: str, words: str) -> None:
    with pytest.raises(UsageError, match=re.escape(words)) as raised:
        parse_location(text)
    assert "hunter2" not in f"{raised.value.message} {raised.value.hint}"


def test_s3_options_set_replace_those_of_the_location() -> None:
    location = S3Location("bucket", "p", endpoint_url="http://a:1", region="eu-1")
    reached = location.reached_with(S3Options(endpoint_url="http://b:2", profile="cps"))
    assert reached == S3Location("bucket", "p", "http://b:2", "eu-1", "cps")
    assert str(reached) == "s3://bucket/p", "the options are never part of the URL"


def test_a_database_in_a_bucket_takes_its_s3_settings(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, """
[defaults]
repository = "s3://cps-backups/cps"
s3_endpoint_url = "http://127.0.0.1:8333"
[[database]]
id = "mail01"
path = "mail01.db"
[[database]]
id = "mail02"
path = "mail02.db"
repository = "s3://cps-backups/two"
s3_region = "eu-central-1"
[[database]]
id = "mail03"
path = "mail03.db"
repository = "local-repo"
"""))
    first, second, third = (d.repository for d in config.databases)
    assert first == S3Location("cps-backups", "cps", "http://127.0.0.1:8333")
    assert second == S3Location("cps-backups", "two", "http://127.0.0.1:8333", "eu-central-1")
    assert third == tmp_path / "local-repo"


def test_the_example_shows_every_key_with_its_default() -> None:
    example = tomllib.loads(EXAMPLE.read_text())
    for section, keys in (("server", SERVER_KEYS), ("intake", INTAKE_KEYS),
                          ("defaults", DATABASE_KEYS)):
        assert set(example[section]) == set(keys), section
        for name, key in keys.items():
            if key.default is not None:
                assert example[section][name] == key.default, (section, name)


def test_the_example_reads(tmp_path: Path) -> None:
    path = tmp_path / "cps.toml"
    path.write_text(EXAMPLE.read_text())
    config = load_config(path)
    assert [d.id for d in config.databases] == ["mail01", "mail02"]
    first, second = config.databases
    assert first.repository == Path("/backup/cps") and first.recovery_point_every == 8 * 3600
    assert second.recovery_point_every == 4 * 3600 and second.ack_after_capture
    assert not first.ack_after_capture and first.full_every == 7 * 86400
    assert config.server.listen == Endpoint("127.0.0.1", 8470)
    assert config.server.state_dir == tmp_path / "cps-server"
    assert config.intake.max_size == 32 << 20 and config.server.tls_cert is None


def test_a_minimal_file_takes_every_default(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, '[[database]]\nid = "a"\npath = "a.db"\n'
                                         'repository = "repo"\n'))
    [database] = config.databases
    assert database.path == tmp_path / "a.db" and database.repository == tmp_path / "repo"
    assert database.keep_daily == 30 and database.prune_every == 86400
    assert config.intake.smtp == Endpoint("127.0.0.1", 2525)
    assert config.intake.group == DEFAULT_GROUP == GroupLimits(100, 16 << 20, 0.005)


@pytest.mark.parametrize("text, words, line", [
    ('[server]\nlisten = "127.0.0.1:8470"\nlistne = "x"\n', "[server] listne: unknown key", 3),
    ('[defaults]\nrepository = "r"\nfull_every = "weekly"\n', "[defaults] full_every", 3),
    ('[defaults]\nrepository = "r"\n[[database]]\nid = "a"\npath = "a.db"\n[[database]]\n'
     'id = "b"\npath = "b.db"\nkeep_daily = -1\n', "[database] keep_daily: expected a whole", 9),
    ('[[database]]\nid = "a"\n', "[database] path: path is required", None),
    ('[[database]]\nid = "a"\npath = "a.db"\n', "names no repository", 2),
    ('[defaults]\nrepository = "r"\n[[database]]\nid = "a"\npath = "a.db"\n[[database]]\n'
     'id = "a"\npath = "b.db"\n', "two databases are named 'a'", 4),
    ('[server]\nlog_format = "xml"\n', "expected one of 'text', 'json'", 2),
    ('[intake]\nsmtp = 25\n', "[intake] smtp: expected a string", 2),
    ('[intake]\nlmtp = "off"\ngroup_max_messages = 0\n',
     "[intake] group_max_messages: expected a whole number, 1 or more", 3),
    ('frobnicate = 1\n', "unknown key 'frobnicate'", None),
])
def test_errors_name_the_key_and_the_line(tmp_path: Path, text: str, words: str,
                                          line: int | None) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, text))
    message = caught.value.message
    assert words in message, message
    if line is not None:
        assert f"line {line}:" in message, message
    assert caught.value.code == "config" and caught.value.hint


def test_a_missing_file_and_bad_toml_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no configuration file"):
        load_config(tmp_path / "nope.toml")
    with pytest.raises(ConfigError, match="line 1"):
        load_config(write(tmp_path, "[server\n"))
