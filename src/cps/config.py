"""Configuration: the values CPS is told, parsed once, and the server's TOML file.

The parsers of durations ("500ms", "15m", "1h30m"), sizes ("32MiB"), listen addresses
("127.0.0.1:2525") and repository locations (a folder, or "s3://bucket/prefix") live here, for the
command line and the configuration file alike.

`cps server --config cps.toml` reads one TOML file (`docs/cps.example.toml` shows every key with
its default):

    [server]     the HTTP API: where it listens, where it keeps its state, how it logs
    [intake]     the SMTP and LMTP listeners delivering into the databases
    [defaults]   what every database gets unless it says otherwise
    [[database]] one table per protected mail database: `id`, `path`, and any key of [defaults]

Every key is declared once, below, with its parser and default. A key the schema does not know,
a value that does not parse, a database without `id` or `path`, two databases with one id: each
is a ConfigError naming the key and the line. Relative paths are relative to the file's folder.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from .errors import ConfigError, UsageError

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_SIZE = re.compile(r"\s*(\d+)\s*([a-zA-Z]*)\s*")
_BYTES = {"": 1, "b": 1, "kb": 1000, "mb": 1000**2, "gb": 1000**3,
          "kib": 1024, "mib": 1024**2, "gib": 1024**3}
_OFF = ("off", "never", "0")
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://")
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_KEY = re.compile(r"[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*")
_USER_INFO = re.compile(r"//[^/]*@")


# Values


def parse_duration(text: str) -> float:
    """Seconds in '500ms', '1s', '15m', '24h', '7d', '2w' (or several: '1h30m')."""
    cleaned = text.strip().lower().replace(" ", "")
    parts = _DURATION.findall(cleaned)
    if not parts or "".join(n + u for n, u in parts) != cleaned:
        raise UsageError(f"cannot read {text!r} as a duration",
                         hint="Write a number and a unit: 500ms, 1s, 15m, 24h, 7d or 2w.")
    return sum(float(n) * _SECONDS[u] for n, u in parts)


def parse_duration_or_off(text: str) -> float | None:
    """A duration, or None for 'off' (also 'never', '0')."""
    return None if text.strip().lower() in _OFF else parse_duration(text)


def parse_size(text: str) -> int:
    """Bytes in '32MiB', '10MB', '4096' (B, KB, MB, GB, KiB, MiB, GiB)."""
    match = _SIZE.fullmatch(text)
    unit = match.group(2).lower() if match else ""
    if not match or unit not in _BYTES or int(match.group(1)) == 0:
        raise UsageError(f"invalid size {text!r}",
                         hint="Give a positive number of bytes with an optional unit: B, KB, MB, "
                              "GB, KiB, MiB or GiB, for example 32MiB.")
    return int(match.group(1)) * _BYTES[unit]


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A host and TCP port; port 0 asks the system for a free port."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    @property
    def loopback(self) -> bool:
        return self.host in ("localhost", "::1") or self.host.startswith("127.")


def parse_endpoint(text: str) -> Endpoint:
    """Parse "HOST:PORT" (an IPv6 host in brackets: "[::1]:2525")."""
    host, colon, port = text.strip().rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not colon or not host or not port.isdigit() or int(port) > 65535:
        raise UsageError(f"invalid listen address {text!r}",
                         hint="Give HOST:PORT, for example 127.0.0.1:2525; port 0 picks a free "
                              "port.")
    return Endpoint(host, int(port))


def parse_endpoint_or_off(text: str) -> Endpoint | None:
    return None if text.strip().lower() == "off" else parse_endpoint(text)


# Repository locations
#
# An S3 location is written `s3://bucket/prefix`; the endpoint URL (for stores other than AWS),
# region and profile are options beside it, never part of it, and credentials are nowhere in it:
# they come from the standard AWS chain (repository/storage/s3.py).

@dataclass(frozen=True, slots=True)
class S3Options:
    """How to reach an S3 store: None leaves each to the AWS chain (AWS_ENDPOINT_URL_S3,
    AWS_REGION, AWS_PROFILE, the shared config file)."""

    endpoint_url: str | None = None
    region: str | None = None
    profile: str | None = None


@dataclass(frozen=True, slots=True)
class S3Location:
    bucket: str
    prefix: str = ""  # a key, or "" for the whole bucket
    endpoint_url: str | None = None
    region: str | None = None
    profile: str | None = None

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    def reached_with(self, options: S3Options) -> S3Location:
        """This location with those of `options` that are set in place of its own."""
        given = {name: value for name, value in asdict(options).items() if value}
        return replace(self, **given)


Location = Path | S3Location


def is_key(text: str) -> bool:
    """Whether `text` names an object of a repository, or a prefix: plain names (letters,
    digits, '.', '_', '-') separated by '/', none of them '.' or '..' (repository/storage)."""
    return _KEY.fullmatch(text) is not None and not {".", ".."} & set(text.split("/"))


def is_url(text: str) -> bool:
    return _SCHEME.match(text) is not None


def parse_location(text: str) -> Location:
    """A path, or an `s3://bucket/prefix` URL (its options set apart: `reached_with`);
    UsageError for other URLs."""
    scheme = _SCHEME.match(text)
    if scheme is None:
        return Path(text)
    shown = _USER_INFO.sub("//", text).partition("?")[0].partition("#")[0]  # never a secret
    if scheme[1].lower() != "s3":
        raise UsageError(f"unsupported repository URL {shown}",
                         hint="Give a local folder, or s3://bucket/prefix.")
    bucket, _slash, prefix = text[scheme.end():].partition("/")
    if shown != text:
        raise UsageError(f"{shown} is given with more than s3://bucket/prefix",
                         hint="Credentials are never given in a URL: CPS takes them from the "
                              "AWS chain (environment, shared credentials file, profile). The "
                              "endpoint URL, region and profile are options of their own.")
    if not _BUCKET.fullmatch(bucket):
        raise UsageError(f"invalid bucket name {bucket!r} in {text}",
                         hint="A bucket name is 3 to 63 lowercase letters, digits, '.' or '-'.")
    prefix = prefix.strip("/")
    if prefix and not is_key(prefix):
        raise UsageError(f"invalid prefix {prefix!r} in {text}",
                         hint="Use letters, digits, '.', '_' and '-', in parts separated by '/'.")
    return S3Location(bucket, prefix)


# The file


@dataclass(frozen=True, slots=True)
class ServerSettings:
    listen: Endpoint  # the HTTP API
    state_dir: Path  # tokens, the audit log, job results
    keep_jobs: float  # seconds a finished job and its files are kept
    log_format: str  # "text" or "json"
    tls_cert: Path | None
    tls_key: Path | None


@dataclass(frozen=True, slots=True)
class GroupLimits:
    """The bounds of one group commit of intake (`store/intake/group.py`): messages, bytes of raw
    message, and the longest wait (seconds) for deliveries already being parsed. `max_messages` 1
    commits each delivery alone."""

    max_messages: int
    max_bytes: int
    max_wait: float


@dataclass(frozen=True, slots=True)
class IntakeSettings:
    smtp: Endpoint | None
    lmtp: Endpoint | None
    max_size: int
    busy_timeout: float
    tls_cert: Path | None
    tls_key: Path | None
    group_max_messages: int
    group_max_bytes: int
    group_max_wait: float

    @property
    def group(self) -> GroupLimits:
        return GroupLimits(self.group_max_messages, self.group_max_bytes, self.group_max_wait)


@dataclass(frozen=True, slots=True)
class DatabaseSettings:
    id: str
    path: Path
    repository: Location
    passphrase_file: Path | None
    full_every: float
    recovery_point_every: float | None
    sync_interval: float
    wal_limit: int
    spool_limit: int
    ack_after_capture: bool
    prune_every: float | None
    keep_within: float
    keep_daily: int
    keep_weekly: int
    drill_every: float | None
    drill_points: int
    drill_window: float
    copy_to: Location | None
    copy_every: float | None


@dataclass(frozen=True, slots=True)
class Config:
    source: Path
    server: ServerSettings
    intake: IntakeSettings
    databases: tuple[DatabaseSettings, ...]

    def database(self, db_id: str) -> DatabaseSettings | None:
        return next((d for d in self.databases if d.id == db_id), None)


@dataclass(frozen=True, slots=True)
class Key:
    """One key of the file: how its value is read, and its default (None: required)."""

    parse: Callable[[Any, Path], Any]
    default: Any
    doc: str


def _text(parse: Callable[[str], Any]) -> Callable[[Any, Path], Any]:
    def read(value: Any, _folder: Path) -> Any:
        if not isinstance(value, str):
            raise UsageError(f"expected a string, found {type(value).__name__}")
        return parse(value)
    return read


def _path(value: Any, folder: Path) -> Path:
    if not isinstance(value, str) or not value:
        raise UsageError("expected a path (a non-empty string)")
    return (folder / value).resolve()


def _optional_path(value: Any, folder: Path) -> Path | None:
    return None if value == "" else _path(value, folder)


def _location(value: Any, folder: Path) -> Location:
    if not isinstance(value, str) or not value:
        raise UsageError("expected a path or an s3://bucket/prefix URL (a non-empty string)")
    location = parse_location(value)
    return location if isinstance(location, S3Location) else (folder / location).resolve()


def _optional_location(value: Any, folder: Path) -> Location | None:
    return _location(value, folder) if value != "" else None


def _optional_text(value: Any, _folder: Path) -> str | None:
    if not isinstance(value, str):
        raise UsageError(f"expected a string, found {type(value).__name__}")
    return value or None


def _integer(value: Any, _folder: Path) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise UsageError("expected a whole number, 0 or more")
    return value


def _positive(value: Any, folder: Path) -> int:
    if _integer(value, folder) == 0:
        raise UsageError("expected a whole number, 1 or more")
    return int(value)


def _boolean(value: Any, _folder: Path) -> bool:
    if not isinstance(value, bool):
        raise UsageError("expected true or false")
    return value


def _choice(*allowed: str) -> Callable[[Any, Path], str]:
    def read(value: Any, _folder: Path) -> str:
        if value not in allowed:
            raise UsageError(f"expected one of {', '.join(map(repr, allowed))}")
        return str(value)
    return read


def _db_id(value: Any, _folder: Path) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", value):
        raise UsageError("expected 1 to 64 letters, digits, '.', '_' or '-', starting with a "
                         "letter or digit")
    return value


SERVER_KEYS: dict[str, Key] = {
    "listen": Key(_text(parse_endpoint), "127.0.0.1:8470", "where the HTTP API listens"),
    "state_dir": Key(_path, "cps-server", "tokens, the audit log and job results"),
    "keep_jobs": Key(_text(parse_duration), "7d",
                     "how long a finished job and its files (restored databases, exports) stay"),
    "log_format": Key(_choice("text", "json"), "text", "text lines, or JSON lines"),
    "tls_cert": Key(_optional_path, "", "serve the API over TLS with this certificate (PEM)"),
    "tls_key": Key(_optional_path, "", "and this private key (PEM)"),
}
INTAKE_KEYS: dict[str, Key] = {
    "smtp": Key(_text(parse_endpoint_or_off), "127.0.0.1:2525", "SMTP listener, or 'off'"),
    "lmtp": Key(_text(parse_endpoint_or_off), "127.0.0.1:2424", "LMTP listener, or 'off'"),
    "max_size": Key(_text(parse_size), "32MiB", "largest message accepted"),
    "busy_timeout": Key(_text(parse_duration), "30s", "how long a delivery waits for a writer"),
    "tls_cert": Key(_optional_path, "", "offer STARTTLS with this certificate (PEM)"),
    "tls_key": Key(_optional_path, "", "and this private key (PEM)"),
    "group_max_messages": Key(_positive, 100, "most deliveries committed in one transaction"),
    "group_max_bytes": Key(_text(parse_size), "16MiB", "most bytes of mail in one transaction"),
    "group_max_wait": Key(_text(parse_duration), "5ms",
                          "longest wait for deliveries being parsed to join a transaction"),
}


def _default(keys: dict[str, Key], name: str) -> Any:
    return keys[name].parse(keys[name].default, Path())


# The group commit's bounds when nothing sets them: the [intake] keys' defaults.
DEFAULT_GROUP = GroupLimits(*(_default(INTAKE_KEYS, f"group_{name}")
                              for name in ("max_messages", "max_bytes", "max_wait")))
DATABASE_KEYS: dict[str, Key] = {
    "repository": Key(_location, None, "the repository the database is protected into: a "
                      "folder, or s3://bucket/prefix"),
    "s3_endpoint_url": Key(_optional_text, "", "an S3 repository's endpoint URL, for stores "
                           "other than AWS"),
    "s3_region": Key(_optional_text, "", "an S3 repository's region"),
    "s3_profile": Key(_optional_text, "", "the AWS profile whose credentials reach the bucket"),
    "passphrase_file": Key(_optional_path, "", "the repository's passphrase, if encrypted"),
    "full_every": Key(_text(parse_duration), "7d", "interval of full backups"),
    "recovery_point_every": Key(_text(parse_duration_or_off), "8h",
                                "interval of scheduled recovery points, or 'off'"),
    "sync_interval": Key(_text(parse_duration), "1s", "longest wait before a commit is durable"),
    "wal_limit": Key(_text(parse_size), "1GiB", "WAL held while the repository is unwritable"),
    "spool_limit": Key(_text(parse_size), "1GiB", "bytes an S3 repository's upload spool holds"),
    "ack_after_capture": Key(_boolean, False,
                             "answer 250 only once the delivery is durable in the repository"),
    "prune_every": Key(_text(parse_duration_or_off), "1d", "interval of retention, or 'off'"),
    "keep_within": Key(_text(parse_duration), "7d", "every point in time this far back"),
    "keep_daily": Key(_integer, 30, "the last full backup or point of this many days"),
    "keep_weekly": Key(_integer, 12, "and of this many weeks"),
    "drill_every": Key(_text(parse_duration_or_off), "1d", "interval of restore drills, or 'off'"),
    "drill_points": Key(_integer, 3, "transactions a drill restores at random"),
    "drill_window": Key(_text(parse_duration), "1d",
                        "a drill restores every recovery point made this far back"),
    "copy_to": Key(_optional_location, "", "a second repository the server keeps a copy of this "
                   "one in (cps repo copy): a folder or s3://bucket/prefix, reached with the "
                   "same S3 settings; '' for none"),
    "copy_every": Key(_text(parse_duration_or_off), "1h",
                      "interval of the copy to copy_to, or 'off'"),
}
S3_KEYS = ("s3_endpoint_url", "s3_region", "s3_profile")  # folded into `repository`, `copy_to`
DATABASE_OWN_KEYS: dict[str, Key] = {
    "id": Key(_db_id, None, "the database's name in the repository"),
    "path": Key(_path, None, "the mail database file"),
}


def load_config(path: Path) -> Config:
    """Read and check the file at `path` (ConfigError, naming the key and the line)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"no configuration file at {path}",
                          hint="Give the path of a TOML file; docs/cps.example.toml shows one."
                          ) from None
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: {exc}", hint="Fix the TOML syntax there.") from None
    return _Reader(path.resolve(), text).config(document)


class _Reader:
    def __init__(self, source: Path, text: str) -> None:
        self.source = source
        self.folder = source.parent
        self.lines = text.splitlines()

    def config(self, document: dict[str, Any]) -> Config:
        self._known(document, {"server", "intake", "defaults", "database"}, "")
        server = ServerSettings(**self._table(document, "server", SERVER_KEYS))
        intake = IntakeSettings(**self._table(document, "intake", INTAKE_KEYS))
        defaults = self._table(document, "defaults", DATABASE_KEYS)
        entries = document.get("database", [])
        if not isinstance(entries, list):
            raise self._error("database", "", "expected [[database]] tables")
        databases = tuple(self._database(entry, n, defaults) for n, entry in enumerate(entries))
        ids = [d.id for d in databases]
        for db_id in sorted({i for i in ids if ids.count(i) > 1}):
            raise self._error("id", "database", f"two databases are named {db_id!r}")
        return Config(self.source, server, intake, databases)

    def _database(self, entry: Any, number: int, defaults: dict[str, Any]) -> DatabaseSettings:
        if not isinstance(entry, dict):
            raise self._error("database", "", "expected [[database]] tables")
        self._known(entry, {*DATABASE_OWN_KEYS, *DATABASE_KEYS}, "database", number)
        own = self._values(entry, DATABASE_OWN_KEYS, "database", number, with_defaults=True)
        values = {**defaults,
                  **self._values(entry, DATABASE_KEYS, "database", number, with_defaults=False)}
        if values.get("repository") is None:
            raise self._error("id", "database", f"database {own['id']!r} names no repository, "
                              "and [defaults] gives none", number)
        options = S3Options(*(values.pop(key) for key in S3_KEYS))
        for key in ("repository", "copy_to"):
            if isinstance(values[key], S3Location):
                values[key] = values[key].reached_with(options)
        return DatabaseSettings(**own, **values)

    def _table(self, document: Mapping[str, Any], name: str, keys: dict[str, Key]
               ) -> dict[str, Any]:
        table = document.get(name, {})
        if not isinstance(table, dict):
            raise self._error(name, "", f"[{name}] must be a table")
        self._known(table, set(keys), name)
        values = self._values(table, keys, name, None, with_defaults=True)
        return {k: values.get(k) for k in keys}

    def _values(self, table: Mapping[str, Any], keys: dict[str, Key], section: str,
                number: int | None, *, with_defaults: bool) -> dict[str, Any]:
        """The keys `table` sets, parsed; with `with_defaults`, the others' defaults too (a key
        whose default is None is then required, unless the section is [defaults])."""
        values: dict[str, Any] = {}
        for name, key in keys.items():
            if name in table:
                try:
                    values[name] = key.parse(table[name], self.folder)
                except UsageError as exc:
                    raise self._error(name, section, exc.message, number) from None
            elif with_defaults and key.default is not None:
                values[name] = key.parse(key.default, self.folder)
            elif with_defaults and section != "defaults":
                raise self._error(name, section, f"{name} is required", number)
        return values

    def _known(self, table: Mapping[str, Any], allowed: set[str], section: str,
               number: int | None = None) -> None:
        for name in table:
            if name not in allowed:
                known = ", ".join(sorted(allowed))
                raise self._error(name, section, f"unknown key {name!r} (known: {known})", number)

    def _error(self, key: str, section: str, problem: str, number: int | None = None
               ) -> ConfigError:
        line = self._line_of(key, section, number)
        where = f"{self.source}" + (f", line {line}" if line else "")
        name = f"[{section}] {key}" if section else key
        return ConfigError(f"{where}: {name}: {problem}",
                           hint="docs/cps.example.toml shows every key with its default.")

    def _line_of(self, key: str, section: str, number: int | None) -> int | None:
        """The line where `key` is set in `section` (the number-th [[section]] when given)."""
        current, seen = "", -1
        header = re.compile(r"\s*\[\[?\s*([A-Za-z0-9_.-]+)\s*\]\]?")
        setting = re.compile(rf"\s*{re.escape(key)}\s*=")
        for index, line in enumerate(self.lines, 1):
            found = header.match(line)
            if found:
                current = found[1]
                seen += current == section and line.lstrip().startswith("[[")
                if not section and current == key:
                    return index
                continue
            in_place = current == section and (number is None or seen == number)
            if in_place and setting.match(line):
                return index
        return None

