"""Benchmarks of the CPS server (`cps server`): its API while it works hard, its intake against
`cps store serve`, what acknowledging deliveries only once they are protected costs, and its memory.

Every server runs as `cps server --config` on 127.0.0.1 ports the system picks (API, LMTP; SMTP
off), over databases and repositories made for the measurement in a temporary folder, with an
operator token; measuring starts once the status of every database says "protecting" (its first
full backup is made), except where said. Four parts, each run in every round:

* status: a 563 MB mail database (100,000 corpus deliveries, built once into /tmp/cps-bench-cache
  by bench/protect_restore.py's builder) copied and protected; LMTP deliveries into it at
  STATUS_RATE a second over one connection; `GET /api/v1/databases/{id}` sampled every
  SAMPLE_EVERY seconds by one client on one kept-alive connection (a fixed schedule: a slow answer
  delays only the next request). Sampling starts when the API answers, while the protector makes
  its first full backup, a live copy of the whole database ("first_full": until the status says
  "protecting"). QUIET_SECONDS later the benchmark asks for a full backup (`POST .../full-backups`;
  synthesised from the repository, it reads only the log since the first) and at once for a
  restore of the latest state (`POST .../restores`, a job whose restore runs in a process of its
  own), follows the job until it ends and the status until it names the new full backup, and samples
  QUIET_SECONDS more. The full backup runs from the answer to its request to the first sample
  naming it ("full"); the restore from the job's started_at to its ended_at ("restore").
  Reported: latency p50, p99 and max of the samples taken while any of the three ran ("busy"),
  of each window, and of all samples. The database stays under 1 GiB, as in the first runs, when
  synthesised full backups of a database past 1 GiB (where SQLite leaves its lock-byte page
  unwritten) failed, a defect fixed since (docs/benchmarks.md, "The server"): so figures compare.
* throughput: the delivery sample of bench/ingest.py (`--messages` corpus messages, CRLF, one
  transaction each, eight mailboxes) over LMTP by 1 and by 8 clients (delivery.deliver), into
  `cps store serve` and into `cps server` protecting its database (ack_after_capture off, default
  sync interval), each on a new database; the ratio server / store serve per round, and the
  server's capture lag p99 as its status gives it once the last delivery is captured.
* ack: the same sample by 8 and by 32 clients (ACK_CLIENTS) into `cps server` with sync_interval
  100ms, with ack_after_capture on and off; each delivery's latency (MAIL to the reply after DATA).
* rss: a server with RSS_DATABASES databases, the delivery sample spread over them (by
  RSS_CLIENTS connections), then RSS_SECONDS of deliveries at RSS_RATE a second over all of them;
  VmRSS of the server and of each process below it (the protectors, and a full backup's process
  if one runs), read from /proc every second; reported at the end of that time, and the peak.

Within a round the peers of a part alternate, in the other order in the next round. Every
delivery must be answered 250, and the databases are checked afterwards to hold every message.

Run it by hand:  .venv/bin/python bench/server.py [--rounds R] [--messages N] [--workdir DIR]
                 [--part NAME ...] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import smtplib
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import httpx

from common import copy_database, machine, percentile, spread, terminate
from cps.repository import Repository
from cps.server.auth import TokenStore
from cps.store import MailDatabase
from delivery import SENDER, CPSServe, Envelope, deliver, inbox_count
from ingest import CORPUS, USERS, corpus_messages, delivery_sample, scratch
from protect_restore import base_database

CPS = [sys.executable, "-m", "cps"]
PARTS = ("throughput", "ack", "rss", "status")
START_SECONDS = 60.0  # for the server to print its ready line
PROTECTING_SECONDS = 300.0  # for a first full backup (the 563 MB database's takes ~10 s)
STOP_SECONDS = 120.0
HTTP_TIMEOUT = 60.0
SAMPLE_EVERY = 0.02
STATUS_RATE = 50.0
QUIET_SECONDS = 2.0
THROUGHPUT_CLIENTS = (1, 8)
ACK_CLIENTS = (8, 32)  # a sender waits a sync interval per delivery: MTAs open many connections
ACK_SYNC = "100ms"
RSS_DATABASES = 5
RSS_CLIENTS = 8  # the sample is delivered by these many connections before the light load
RSS_RATE = 10.0
RSS_SECONDS = 30
STATUS_BASE_COUNT = 100_000  # deliveries: 563 MB, under 1 GiB (see the docstring)
BIG_RECIPIENT = "bench@example.com"  # the one mailbox of that database
Note = Callable[[str], None]


class Server:
    """A running `cps server` over `databases` (id -> mail database), each protected into a new
    repository under `root` (or into the one `repositories` names), for the life of a `with`
    block; the block starts once every database is protected, or with `wait` false as soon as the
    API answers."""

    def __init__(self, root: Path, databases: dict[str, Path], *, ack: bool = False,
                 sync_interval: str = "1s", wait: bool = True,
                 repositories: dict[str, Path] | None = None) -> None:
        self.root = root
        self.repositories = repositories or {}
        self.wait = wait
        self.databases = databases
        self.ack = ack
        self.sync_interval = sync_interval
        self.log = root / "server.log"
        self.ready: dict[str, Any] = {}
        self.token = ""
        self._process: subprocess.Popen[str] | None = None

    def __enter__(self) -> Server:
        config = self._configure()
        with self.log.open("wb") as log:
            self._process = subprocess.Popen(
                [*CPS, "server", "--config", str(config)], stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=log, text=True)
        try:
            self.ready = self._read_ready()
            if self.wait:
                self.wait_protecting()
        except BaseException:
            self._stop()
            raise
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop()

    @property
    def pid(self) -> int:
        assert self._process is not None
        return self._process.pid

    @property
    def lmtp(self) -> int:
        return int(str(self.ready["lmtp"]).rpartition(":")[2])

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=str(self.ready["api"]), timeout=HTTP_TIMEOUT,
                            headers={"Authorization": f"Bearer {self.token}"})

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def _configure(self) -> Path:
        """The configuration file, a repository per database and the token."""
        state = self.root / "state"
        state.mkdir()
        lines = ["[server]", 'listen = "127.0.0.1:0"', f"state_dir = {json.dumps(str(state))}",
                 "[intake]", 'smtp = "off"', 'lmtp = "127.0.0.1:0"']
        for db_id, path in self.databases.items():
            repository = self.repositories.get(db_id) or self.root / "repositories" / db_id
            if db_id not in self.repositories:
                Repository.init(repository)
            lines += ["[[database]]", f'id = "{db_id}"', f"path = {json.dumps(str(path))}",
                      f"repository = {json.dumps(str(repository))}",
                      f"ack_after_capture = {'true' if self.ack else 'false'}",
                      f'sync_interval = "{self.sync_interval}"']
        config = self.root / "cps.toml"
        config.write_text("\n".join(lines) + "\n")
        self.token, _record = TokenStore(state).create("bench", "operator")
        return config

    def _read_ready(self) -> dict[str, Any]:
        """The server's ready line (it prints nothing else on stdout), within START_SECONDS."""
        assert self._process is not None and self._process.stdout is not None
        found: list[str] = []
        stdout = self._process.stdout
        reader = threading.Thread(target=lambda: found.append(stdout.readline()), daemon=True)
        reader.start()
        reader.join(START_SECONDS)
        if not found or not found[0]:
            raise RuntimeError(f"cps server did not get ready: {self.log_tail()}")
        return dict(json.loads(found[0]))

    def wait_protecting(self) -> None:
        """Until the status of every database says "protecting": its first full backup is made."""
        deadline = time.monotonic() + PROTECTING_SECONDS
        with self.client() as api:
            for db_id in self.databases:
                while api.get(f"/api/v1/databases/{db_id}").json()["protection"]["condition"] \
                        != "protecting":
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"{db_id} is not protected: {self.log_tail()}")
                    time.sleep(0.1)

    def capture_lag(self, db_id: str, ended: float) -> float | None:
        """The capture lag p99 (seconds) the status of `db_id` gives once it has captured a
        transaction committed within a second before `ended` (the last delivery's reply): the
        protector's lags of the transactions it captured last."""
        deadline = time.monotonic() + PROTECTING_SECONDS
        with self.client() as api:
            while time.monotonic() < deadline:
                status = api.get(f"/api/v1/databases/{db_id}").json()
                last = (status.get("last_transaction") or {}).get("time") or 0
                if last >= ended - 1 and status.get("capture_lag"):
                    return float(status["capture_lag"]["p99_seconds"])
                time.sleep(0.1)
        return None

    def _stop(self) -> None:
        if self._process is None:
            return
        terminate(self._process, STOP_SECONDS)
        self._process = None


def new_database(path: Path, users: Sequence[str]) -> Path:
    with MailDatabase.create(path) as database:
        for user in users:
            database.create_mailbox(user)
    return path


def stored(database: Path) -> int:
    """Messages in the Inboxes of every mailbox of `database`."""
    with MailDatabase.open(database, readonly=True) as opened:
        users = [mailbox.address for mailbox in opened.mailboxes()]
    return sum(inbox_count(database, user) for user in users)


def addressed(envelopes: Sequence[Envelope], users: Sequence[str]) -> list[Envelope]:
    """The same messages, message n to users[n % len(users)]."""
    return [(users[n % len(users)], message) for n, (_user, message) in enumerate(envelopes)]


class InBackground:
    """`_run` in a thread while the block runs, until `_stop` is set at its end; what failed
    (`failures`, each said by `_run`) raised then, unless the block failed itself."""

    doing = "tasks"  # what failures are of, for the error

    def __init__(self) -> None:
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        self._thread.join()
        self._ended()
        if self.failures and kind is None:
            raise RuntimeError(f"{len(self.failures)} {self.doing} failed, first: "
                               f"{self.failures[0]}")

    def _run(self) -> None:
        raise NotImplementedError

    def _ended(self) -> None:
        """After the thread has ended: what the subclass closes."""


class SteadyLoad(InBackground):
    """Deliveries over one LMTP connection at `rate` a second, in a thread, while the block runs:
    the write load the status and memory measurements run under."""

    doing = "deliveries"

    def __init__(self, port: int, envelopes: Sequence[Envelope], rate: float) -> None:
        self.port = port
        self.envelopes = envelopes
        self.rate = rate
        self.delivered = 0
        super().__init__()

    def _run(self) -> None:
        began = time.monotonic()
        try:
            with smtplib.LMTP("127.0.0.1", self.port, timeout=HTTP_TIMEOUT) as session:
                session.ehlo()
                while not self._stop.wait(max(0.0, began + self.delivered / self.rate
                                              - time.monotonic())):
                    recipient, message = self.envelopes[self.delivered % len(self.envelopes)]
                    refused = session.sendmail(SENDER, [recipient], message)
                    if refused:
                        self.failures.append(f"{recipient}: {refused}")
                    self.delivered += 1
        except (OSError, smtplib.SMTPException) as error:
            self.failures.append(f"{type(error).__name__}: {error}")


# Status latency


@dataclass(frozen=True, slots=True)
class Sample:
    at: float  # time.time() when the request went out
    seconds: float
    protecting: bool  # the status says so (the first full backup is made)
    full_txn: int | None  # the last full backup the status names


class StatusSampler(InBackground):
    """GET the status of `db_id` every SAMPLE_EVERY seconds, in a thread, while the block runs."""

    doing = "status requests"

    def __init__(self, server: Server, db_id: str) -> None:
        self.client = server.client()
        self.path = f"/api/v1/databases/{db_id}"
        self.samples: list[Sample] = []
        super().__init__()

    def _ended(self) -> None:
        self.client.close()

    def first(self, test: Callable[[Sample], bool]) -> float:
        """When the first sample that passes `test` was taken (waiting for one if need be)."""
        deadline = time.monotonic() + PROTECTING_SECONDS
        while (found := next((s.at for s in list(self.samples) if test(s)), None)) is None:
            if time.monotonic() > deadline or self.failures:
                raise RuntimeError(f"no status as awaited after {PROTECTING_SECONDS:.0f} s "
                                   f"({self.failures[:1]})")
            time.sleep(0.05)
        return found

    def _run(self) -> None:
        due = time.monotonic()
        while not self._stop.wait(max(0.0, due - time.monotonic())):
            due += SAMPLE_EVERY
            at, began = time.time(), time.perf_counter()
            try:
                answer = self.client.get(self.path)
                answer.raise_for_status()
            except httpx.HTTPError as error:
                self.failures.append(f"{type(error).__name__}: {error}")
                continue
            seconds = time.perf_counter() - began
            status = answer.json()
            self.samples.append(Sample(at, seconds, status["protection"]["condition"] == "protecting",
                                       (status["last_full"] or {}).get("txn")))
            due = max(due, time.monotonic())  # late: the next request goes out now, not a burst


def status_round(base: Path, envelopes: Sequence[Envelope], work: Path, number: int,
                 note: Note) -> dict[str, Any]:
    """Sampling starts as soon as the API answers, so the first full backup (a live copy of the
    database) is sampled too; then a full backup and a restore are asked for."""
    with scratch(work) as root:
        database = root / "mail.db"
        copy_database(base, database)
        load_before = os.getloadavg()
        with Server(root, {"big": database}, wait=False) as server:
            ready_at = time.time()
            load = addressed(envelopes, [BIG_RECIPIENT])
            with SteadyLoad(server.lmtp, load, STATUS_RATE) as steady, \
                    StatusSampler(server, "big") as sampler:
                windows = {"first_full": (ready_at, sampler.first(lambda s: s.protecting))}
                time.sleep(QUIET_SECONDS)
                windows.update(_full_and_restore(server, sampler))
                time.sleep(QUIET_SECONDS)
            delivered = steady.delivered
    result = {"round": number, "load_before": load_before, "load_after": os.getloadavg(),
              "deliveries": delivered, **_latencies(sampler.samples, windows)}
    note(f"round {number}: status: busy p99 {result['busy']['p99_ms']} ms over "
         f"{result['busy']['samples']} samples; " + ", ".join(
             f"{name} {w['seconds']} s, {w['samples']} samples, p99 {w['p99_ms']} ms"
             for name, w in result["windows"].items()) + f"; all p99 {result['all']['p99_ms']} ms")
    return result


def _full_and_restore(server: Server, sampler: StatusSampler) -> dict[str, tuple[float, float]]:
    """Ask for a full backup, then for a restore of the latest state; when each ran."""
    with server.client() as api:
        full = api.post("/api/v1/databases/big/full-backups")
        full_started = time.time()
        full.raise_for_status()
        txn = full.json()["txn"]
        if txn is None:
            raise RuntimeError("the server says a full backup is being made already")
        job = api.post("/api/v1/databases/big/restores", json={"latest": True}).json()
        while not (job := api.get(f"/api/v1/jobs/{job['id']}").json())["ended_at"]:
            time.sleep(0.2)
        if job["state"] != "done":
            raise RuntimeError(f"the restore job ended {job['state']}: {job['error']}")
    full_ended = sampler.first(lambda s: (s.full_txn or 0) >= txn)
    return {"full": (full_started, full_ended), "restore": (job["started_at"], job["ended_at"])}


def _latencies(samples: Sequence[Sample], windows: dict[str, tuple[float, float]]
               ) -> dict[str, Any]:
    """The latencies of all samples, of those taken while anything ran ("busy"), and per
    window; how many samples fell while the full backup and the restore both ran."""
    def within(name: str, sample: Sample) -> bool:
        return windows[name][0] <= sample.at <= windows[name][1]

    busy = [s for s in samples if any(within(name, s) for name in windows)]
    return {
        "all": _distribution([s.seconds for s in samples]),
        "busy": _distribution([s.seconds for s in busy]),
        "windows": {name: {"seconds": round(end - start, 2),
                           **_distribution([s.seconds for s in samples if within(name, s)])}
                    for name, (start, end) in windows.items()},
        "full_and_restore_samples": sum(within("full", s) and within("restore", s)
                                        for s in samples),
        "busy_ms": sorted(round(s.seconds * 1000, 2) for s in busy),
    }


def _distribution(seconds: Sequence[float]) -> dict[str, Any]:
    if not seconds:
        return {"samples": 0, "p50_ms": None, "p99_ms": None, "max_ms": None}
    return {"samples": len(seconds), "p50_ms": round(percentile(seconds, 0.5) * 1000, 2),
            "p99_ms": round(percentile(seconds, 0.99) * 1000, 2),
            "max_ms": round(max(seconds) * 1000, 2)}


# Delivery: throughput and ack_after_capture


def delivery_run(peer: str, clients: int, envelopes: Sequence[Envelope], root: Path, number: int
                 ) -> dict[str, Any]:
    """One measurement: `peer` is "store-serve", "server", "ack-off" or "ack-on"."""
    latencies: list[float] = []
    load_before = os.getloadavg()
    with _peer(peer, root) as (port, database, tail, lag):
        try:
            seconds = deliver("lmtp", port, envelopes, clients, latencies)
        except RuntimeError as error:
            raise RuntimeError(f"{error}\n{peer}'s log ends:\n{tail()}") from error
        capture_lag_p99 = lag(time.time())
    count = stored(database)
    if count != len(envelopes):
        raise RuntimeError(f"{peer} holds {count} of the {len(envelopes)} delivered messages")
    return {"peer": peer, "clients": clients, "round": number, "messages": len(envelopes),
            "seconds": round(seconds, 3), "per_second": round(len(envelopes) / seconds, 1),
            "load_before": load_before, "load_after": os.getloadavg(),
            "capture_lag_p99_s": capture_lag_p99, **_distribution(latencies)}


@contextmanager
def _peer(peer: str, root: Path
          ) -> Iterator[tuple[int, Path, Callable[[], str], Callable[[float], float | None]]]:
    """A running `peer` over a new database with a mailbox per USERS: its LMTP port, the
    database, its log's tail, and the capture lag p99 once what was delivered by a time is
    captured (None for `cps store serve`, which protects nothing)."""
    if peer == "store-serve":
        with CPSServe(root, USERS) as serve:
            yield serve.ports["lmtp"], serve.database, serve.log_tail, lambda ended: None
        return
    database = new_database(root / "mail.db", USERS)
    sync_interval = ACK_SYNC if peer.startswith("ack") else "1s"
    with Server(root, {"mail": database}, ack=peer == "ack-on",
                sync_interval=sync_interval) as server:
        yield server.lmtp, database, server.log_tail, lambda ended: server.capture_lag("mail",
                                                                                     ended)


def delivery_round(part: str, envelopes: Sequence[Envelope], work: Path, number: int,
                   note: Note) -> list[dict[str, Any]]:
    """Every measurement of `part` ("throughput" or "ack") once, the peers in turn."""
    peers, clients = (("store-serve", "server"), THROUGHPUT_CLIENTS) if part == "throughput" \
        else (("ack-off", "ack-on"), ACK_CLIENTS)
    runs = []
    for count in clients:
        for peer in peers if number % 2 else reversed(peers):
            with scratch(work) as root:
                run = delivery_run(peer, count, envelopes, root, number)
            note(f"round {number}: {part}: {peer}, {count} clients: {run['per_second']} "
                 f"deliveries/s, p50 {run['p50_ms']} ms, p99 {run['p99_ms']} ms, capture lag "
                 f"p99 {run['capture_lag_p99_s']} s")
            runs.append({"part": part, **run})
    return runs


# Memory


def rss_round(envelopes: Sequence[Envelope], work: Path, number: int, note: Note
              ) -> dict[str, Any]:
    users = USERS[:RSS_DATABASES]
    with scratch(work) as root:
        databases = {f"db{n}": new_database(root / f"db{n}.db", [user])
                     for n, user in enumerate(users, 1)}
        load_before = os.getloadavg()
        with Server(root, databases) as server:
            mail = addressed(envelopes, users)
            deliver("lmtp", server.lmtp, mail, RSS_CLIENTS)
            with SteadyLoad(server.lmtp, mail, RSS_RATE) as steady:
                readings = [_rss_after(server.pid, 1.0) for _ in range(RSS_SECONDS)]
        held = sum(stored(database) for database in databases.values())
    if held != len(mail) + steady.delivered:
        raise RuntimeError(f"the databases hold {held} of {len(mail) + steady.delivered} messages")
    result = {"round": number, "load_before": load_before, "load_after": os.getloadavg(),
              "end": readings[-1], "peak": _peaks(readings)}
    note(f"round {number}: rss: " + ", ".join(f"{k} {v / 1024:.1f}" for k, v in readings[-1].items())
         + " MiB")
    return result


def _rss_after(pid: int, seconds: float) -> dict[str, int]:
    time.sleep(seconds)
    return tree_rss(pid)


def tree_rss(pid: int) -> dict[str, int]:
    """VmRSS in KiB of the server `pid`, of each process below it (named by what it is), and
    their total."""
    parents = _parents()
    found = {"server": _vmrss(pid)}
    for child in _below(pid, parents):
        found[_name(child, parents)] = _vmrss(child)
    found["total"] = sum(found.values())
    return found


def _parents() -> dict[int, int]:
    """Every process's parent, from /proc/PID/stat (the field after the command's name)."""
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue  # ended meanwhile
            parents[int(entry.name)] = int(stat.rpartition(")")[2].split()[1])
    return parents


def _below(pid: int, parents: dict[int, int]) -> list[int]:
    children = sorted(child for child, parent in parents.items() if parent == pid)
    return [p for child in children for p in (child, *_below(child, parents))]


def _name(pid: int, parents: dict[int, int]) -> str:
    """"protector ID" for a `cps protect`, "full backup of ID" for its full backup's process."""
    arguments = _command(pid)
    if "--db-id" in arguments:
        return f"protector {arguments[arguments.index('--db-id') + 1]}"
    above = _command(parents.get(pid, 0))
    if "--db-id" in above:
        return f"full backup of {above[above.index('--db-id') + 1]}"
    return f"process {pid}"


def _command(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


def _vmrss(pid: int) -> int:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0  # ended meanwhile
    return next((int(line.split()[1]) for line in status.splitlines()
                 if line.startswith("VmRSS:")), 0)


def _peaks(readings: Sequence[dict[str, int]]) -> dict[str, int]:
    peaks: dict[str, int] = {}
    for reading in readings:
        for name, kib in reading.items():
            peaks[name] = max(peaks.get(name, 0), kib)
    return peaks


# The run


def run_rounds(args: argparse.Namespace, work: Path, note: Note) -> dict[str, list[Any]]:
    envelopes = delivery_sample(corpus_messages(CORPUS), args.messages)
    note(f"delivery sample: {len(envelopes)} messages, "
         f"{sum(len(m) for _, m in envelopes) / 1e6:.2f} MB")
    base = base_database(STATUS_BASE_COUNT, rebuild=False) if "status" in args.parts else None
    results: dict[str, list[Any]] = {part: [] for part in args.parts}
    for number in range(1, args.rounds + 1):
        for part in args.parts:
            if part in ("throughput", "ack"):
                results[part].extend(delivery_round(part, envelopes, work, number, note))
            elif part == "rss":
                results[part].append(rss_round(envelopes, work, number, note))
            else:
                assert base is not None
                results[part].append(status_round(base, envelopes, work, number, note))
    return results


def summarise(results: dict[str, list[Any]]) -> dict[str, Any]:
    makers = {"status": _status_summary, "throughput": _throughput_summary,
              "ack": _ack_summary, "rss": _rss_summary}
    return {part: makers[part](runs) for part, runs in results.items()}


def _status_summary(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    busy = [ms / 1000 for r in rounds for ms in r["busy_ms"]]
    summary: dict[str, Any] = {
        "busy_p50_ms": spread([r["busy"]["p50_ms"] for r in rounds], 2),
        "busy_p99_ms": spread([r["busy"]["p99_ms"] for r in rounds], 2),
        "busy_max_ms": spread([r["busy"]["max_ms"] for r in rounds], 2),
        "busy_pooled": _distribution(busy),
        "all_p50_ms": spread([r["all"]["p50_ms"] for r in rounds], 2),
        "all_p99_ms": spread([r["all"]["p99_ms"] for r in rounds], 2),
        "full_and_restore_samples": spread([r["full_and_restore_samples"] for r in rounds], 0),
    }
    for name in rounds[0]["windows"]:
        for key in ("seconds", "samples", "p99_ms"):
            summary[f"{name}_{key}"] = spread([r["windows"][name][key] or 0 for r in rounds], 2)
    return summary


def _by(runs: list[dict[str, Any]], peer: str, clients: int) -> dict[int, dict[str, Any]]:
    return {r["round"]: r for r in runs if r["peer"] == peer and r["clients"] == clients}


def _compared(runs: list[dict[str, Any]], peer: str, reference: str, clients: int
              ) -> dict[str, Any]:
    """Both peers' rates and latencies, and `peer`'s rate over `reference`'s: the ratio of the
    medians, and per round (measured one right after the other)."""
    mine, theirs = _by(runs, peer, clients), _by(runs, reference, clients)
    row: dict[str, Any] = {"clients": clients}
    for name, found in ((peer, mine), (reference, theirs)):
        row[name] = {key: spread([r[key] for r in found.values()], 1)
                     for key in ("per_second", "p50_ms", "p99_ms", "max_ms")}
    lags = [r["capture_lag_p99_s"] for r in mine.values() if r["capture_lag_p99_s"] is not None]
    if lags:
        row[peer]["capture_lag_p99_s"] = spread(lags, 3)
    row["ratio_of_medians"] = round(row[peer]["per_second"]["median"]
                                    / row[reference]["per_second"]["median"], 3)
    row["ratio_per_round"] = spread([mine[n]["per_second"] / theirs[n]["per_second"]
                                     for n in sorted(mine) if n in theirs])
    return row


def _throughput_summary(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [_compared(runs, "server", "store-serve", clients) for clients in THROUGHPUT_CLIENTS]


def _ack_summary(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [_compared(runs, "ack-on", "ack-off", clients) for clients in ACK_CLIENTS]


def _rss_summary(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    def mib(values: list[int]) -> dict[str, Any]:
        return spread([v / 1024 for v in values], 1)

    protectors = [kib for r in rounds for name, kib in r["end"].items()
                  if name.startswith("protector ")]
    return {"server_mib": mib([r["end"]["server"] for r in rounds]),
            "protector_mib": mib(protectors),
            "total_mib": mib([r["end"]["total"] for r in rounds]),
            "total_peak_mib": mib([r["peak"]["total"] for r in rounds]),
            "server_peak_mib": mib([r["peak"]["server"] for r in rounds])}


def render(summary: dict[str, Any]) -> str:
    lines = []
    for part, found in summary.items():
        lines.append(f"{part}:")
        rows = found if isinstance(found, list) else [found]
        for row in rows:
            lines.extend(f"  {key}: {_brief(value)}" for key, value in row.items())
    return "\n".join(lines)


def _brief(value: Any) -> str:
    """A spread as "median (min-max)", a dict of them one after the other, anything else as is."""
    if isinstance(value, dict) and "median" in value:
        return f"{value['median']} ({value['min']}-{value['max']})"
    if isinstance(value, dict):
        return "; ".join(f"{key} {_brief(inner)}" for key, inner in value.items())
    return str(value)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="rounds, each runs every part (3)")
    parser.add_argument("--messages", type=int, default=2000,
                        help="delivery sample size, for throughput, ack and rss (2000)")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="where the temporary databases and repositories go (the system "
                             "temp folder)")
    parser.add_argument("--part", dest="parts", action="append", choices=PARTS,
                        help=f"run this part only (repeatable; default: all of {', '.join(PARTS)})")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    args = parser.parse_args()
    args.parts = args.parts or list(PARTS)
    if args.messages < 1 or args.rounds < 1:
        parser.error("--messages and --rounds must be at least 1")
    # SIGTERM unwinds like Ctrl-C, so the servers are stopped and the temporary folders removed.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(1))
    load_before = os.getloadavg()
    began = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="cps-server-bench-", dir=args.workdir) as work:
        results = run_rounds(args, Path(work), lambda text: print(text, file=sys.stderr, flush=True))
    summary = summarise(results)
    if not args.json:
        print(render(summary))
        return
    workdir = args.workdir or Path(tempfile.gettempdir())
    document = {"machine": machine(workdir),
                "load_average": {"before": load_before, "after": os.getloadavg()},
                "seconds": round(time.monotonic() - began), "rounds": args.rounds,
                "messages": args.messages, "parts": args.parts, "summary": summary,
                "runs": results}
    print(json.dumps(document, indent=2))


if __name__ == "__main__":
    main()
