"""The two protectors of the protection benchmark, run as child processes, and what is sampled.

`CPSProtector` runs `cps protect DB --repo REPO --json --sync-interval X` and waits for its "ready"
event (the first full backup is in the repository); `LitestreamProtector` writes a config file that
replicates DB to a local `file` replica, runs `litestream replicate -config FILE` and waits for the
first LTX file in the replica. Both stop with SIGTERM (each makes what it captured durable first) and
are killed if they do not stop in time. Neither listens on any port.

`Sampler` reads, every `SAMPLE_SECONDS`, the size of the database's WAL file and the protector's
VmRSS, and at the start and end its CPU time, from /proc.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Any

VENV_BIN = Path(sys.executable).parent
LITESTREAM = VENV_BIN / "litestream"
START_SECONDS = 600.0  # a first full backup of a 1 GB database takes a while
STOP_SECONDS = 120.0
SAMPLE_SECONDS = 0.2
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def wait_for(condition: Any, what: str, timeout: float, process: subprocess.Popen[Any] | None
             ) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{what}: the process exited with {process.returncode}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what}: not after {timeout:.0f} s")
        time.sleep(0.01)


def tree_bytes(root: Path) -> int:
    """Bytes of the regular files under root (apparent size)."""
    total = 0
    for folder, _dirs, files in os.walk(root):
        for name in files:
            with contextlib.suppress(FileNotFoundError):
                total += os.lstat(os.path.join(folder, name)).st_size
    return total


class Protector:
    """Base of both: a child process with a log, stopped on exit from the `with` block."""

    name = ""

    def __init__(self, db: Path, work: Path, sync_interval: str) -> None:
        self.db = db
        self.work = work
        self.sync_interval = sync_interval
        self.process: subprocess.Popen[Any] | None = None
        self.log_path = work / f"{self.name}.log"
        self.startup_seconds = 0.0

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def command(self) -> list[str]:
        raise NotImplementedError

    def ready(self) -> bool:
        raise NotImplementedError

    def storage(self) -> Path:
        raise NotImplementedError

    def __enter__(self) -> Protector:
        started = time.monotonic()
        self.prepare()
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL,
                                            stdout=subprocess.PIPE, stderr=log)
        self.start_reader(self.process.stdout)
        try:
            wait_for(self.ready, f"{self.name} start", START_SECONDS, self.process)
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - started
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def prepare(self) -> None:
        return None

    def start_reader(self, stream: IO[bytes] | None) -> None:
        def drain() -> None:
            assert stream is not None
            for line in stream:
                self.on_line(line.decode(errors="replace"))
        threading.Thread(target=drain, daemon=True).start()

    def on_line(self, line: str) -> None:
        return None

    def stop(self) -> float:
        """SIGTERM, wait; returns the seconds it took to stop."""
        if self.process is None or self.process.poll() is not None:
            return 0.0
        started = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(STOP_SECONDS)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise RuntimeError(f"{self.name} did not stop on SIGTERM") from None
        if self.process.returncode not in (0, -signal.SIGTERM):
            raise RuntimeError(f"{self.name} exited with {self.process.returncode}; see "
                               f"{self.log_path}")
        return time.monotonic() - started


class CPSProtector(Protector):
    name = "cps"

    def __init__(self, db: Path, work: Path, sync_interval: str = "1s",
                 profile: Path | None = None) -> None:
        super().__init__(db, work, sync_interval)
        self.repo = work / "repo"
        self.profile = profile
        self.events: list[dict[str, Any]] = []

    def prepare(self) -> None:
        if not self.repo.exists():
            subprocess.run([sys.executable, "-m", "cps", "repo", "init", str(self.repo)],
                           check=True, stdout=subprocess.DEVNULL)

    def command(self) -> list[str]:
        profiler = ["-m", "cProfile", "-o", str(self.profile)] if self.profile else []
        return [sys.executable, *profiler, "-m", "cps", "protect", str(self.db),
                "--repo", str(self.repo), "--db-id", "bench", "--json",
                "--sync-interval", self.sync_interval, "--recovery-point-every", "off"]

    def on_line(self, line: str) -> None:
        with contextlib.suppress(ValueError):
            self.events.append(json.loads(line))

    def ready(self) -> bool:
        return any(e.get("event") == "ready" for e in list(self.events))

    @property
    def ready_txn(self) -> int:
        return int(next(e["txn"] for e in self.events if e.get("event") == "ready"))

    def count(self, event: str) -> int:
        return sum(1 for e in self.events if e.get("event") == event)

    def storage(self) -> Path:
        return self.repo

    def segments_dir(self) -> Path:
        return self.repo / "databases" / "bench" / "chains" / "00000001" / "segments"

    def status(self) -> dict[str, Any]:
        out = subprocess.run([sys.executable, "-m", "cps", "timeline", str(self.repo),
                              "--db", "bench", "--json"], check=True, capture_output=True)
        return dict(json.loads(out.stdout))


class LitestreamProtector(Protector):
    name = "litestream"

    def __init__(self, db: Path, work: Path, sync_interval: str = "1s") -> None:
        super().__init__(db, work, sync_interval)
        self.replica = work / "replica"
        self.config = work / "litestream.yml"

    def prepare(self) -> None:
        # monitor-interval is how often Litestream reads the WAL into a local LTX file and
        # sync-interval how often it ships those to the replica: both at CPS's sync interval.
        self.config.write_text(
            "dbs:\n"
            f"  - path: {self.db}\n"
            f"    monitor-interval: {self.sync_interval}\n"
            "    replica:\n"
            + "".join(f"      {line}\n" for line in self.replica_settings())
            + f"      sync-interval: {self.sync_interval}\n")

    def replica_settings(self) -> list[str]:
        """Where the replica is, as lines of its configuration."""
        return ["type: file", f"path: {self.replica}"]

    def command(self) -> list[str]:
        return [str(LITESTREAM), "replicate", "-config", str(self.config)]

    def l0_dir(self) -> Path:
        return self.replica / "ltx" / "0"

    def ready(self) -> bool:
        return self.l0_dir().is_dir() and any(self.l0_dir().iterdir())

    def storage(self) -> Path:
        return self.replica

    def start_reader(self, stream: IO[bytes] | None) -> None:
        # Litestream logs to stdout: keep it with the log file.
        def drain() -> None:
            assert stream is not None
            with self.log_path.open("ab") as log:
                for line in stream:
                    log.write(line)
        threading.Thread(target=drain, daemon=True).start()


def litestream_version() -> str:
    out = subprocess.run([str(LITESTREAM), "version"], capture_output=True, text=True, check=True)
    return out.stdout.strip()


@dataclass
class Samples:
    wal_max: int = 0
    rss: list[tuple[float, int]] = field(default_factory=list)  # (seconds since start, KiB)
    wal: list[tuple[float, int]] = field(default_factory=list)
    cpu_seconds: float = 0.0
    hwm_kib: int = 0
    written_bytes: int = 0  # by the protector, to storage (/proc/PID/io write_bytes)

    def summary(self) -> dict[str, Any]:
        rss = [kib for _t, kib in self.rss]
        return {
            "wal_max_mib": round(self.wal_max / 2**20, 1),
            "rss_max_mib": round(max(rss) / 1024, 1) if rss else None,
            "rss_first_mib": round(rss[0] / 1024, 1) if rss else None,
            "rss_last_mib": round(rss[-1] / 1024, 1) if rss else None,
            "rss_hwm_mib": round(self.hwm_kib / 1024, 1) if self.hwm_kib else None,
            "protector_cpu_seconds": round(self.cpu_seconds, 2),
            "protector_written_mib": round(self.written_bytes / 2**20, 1),
        }


class Sampler:
    """WAL size and (with a pid) the protector's memory and CPU, in a thread, while in `with`."""

    def __init__(self, db: Path, pid: int | None) -> None:
        self.wal = Path(f"{db}-wal")
        self.pid = pid
        self.samples = Samples()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._cpu_start = 0.0
        self._written_start = 0

    def __enter__(self) -> Samples:
        self._cpu_start = self._cpu()
        self._written_start = self._written()
        self._thread.start()
        return self.samples

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample(time.monotonic() - self._started)
        self.samples.cpu_seconds = self._cpu() - self._cpu_start
        self.samples.written_bytes = self._written() - self._written_start
        self.samples.hwm_kib = self._status_kib("VmHWM")

    def _run(self) -> None:
        self._started = time.monotonic()
        while not self._stop.wait(SAMPLE_SECONDS):
            self._sample(time.monotonic() - self._started)

    def _sample(self, at: float) -> None:
        try:
            size = self.wal.stat().st_size
        except FileNotFoundError:
            size = 0
        self.samples.wal_max = max(self.samples.wal_max, size)
        self.samples.wal.append((round(at, 2), size))
        rss = self._status_kib("VmRSS")
        if rss:
            self.samples.rss.append((round(at, 2), rss))

    def _status_kib(self, key: str) -> int:
        return self._proc_field("status", key)

    def _written(self) -> int:
        return self._proc_field("io", "write_bytes")

    def _proc_field(self, name: str, key: str) -> int:
        """The number after `key:` in /proc/PID/NAME of the protector; 0 once it has gone."""
        if self.pid is None:
            return 0
        try:
            text = Path(f"/proc/{self.pid}/{name}").read_text()
        except (FileNotFoundError, ProcessLookupError):
            return 0
        for line in text.splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
        return 0

    def _cpu(self) -> float:
        if self.pid is None:
            return 0.0
        try:
            fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            return 0.0
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime
