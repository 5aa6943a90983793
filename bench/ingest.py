"""Ingest benchmark of the CPS mail store: bulk import, and SMTP/LMTP delivery against Dovecot's LMTP.

What it measures, all on this machine, in one run:

* import: `cps store import` of the corpus's enron/ .eml tree and its mbox/ files into a fresh mail
  database, timed from the start of the first command to the end of the last, process start-up
  included ("import"), and as the sum of the times the two imports report ("import-only"):
  messages/s and MB/s, MB being 10^6 bytes of raw message as the import stored it.
* delivery: a fixed sample of the same messages (every k-th, `--messages` of them, line endings
  made CRLF as on the wire), delivered one message per transaction, each to one of eight mailboxes
  in turn, by 1 and by 8 concurrent clients (see `delivery.deliver`), into `cps store serve` over
  LMTP and SMTP and into Dovecot's LMTP (mdbox, its default fsync settings; see `dovecot.py`);
  with `--single`, also into `cps store serve --group-max-messages 1` ("cps-single": group
  commit off, each delivery its own transaction).
  Every server starts empty for each measurement, and is checked afterwards to hold every message.
  Each delivery's latency is measured too, from sending MAIL to the reply after DATA; the table
  gives the median over the rounds of each round's p99.

Peers of the import, in the same rounds: with `--peer-src`, another CPS source tree (an earlier
commit's `src/`) importing the same sources the same way; and "cat+fdatasync", `cat` of the same
source files into one new file made durable (`dd conv=fdatasync`): the disk's share of the work.

Each round runs every measurement once, CPS and its peer alternating (A B A B ...); the table gives
the median over the rounds with the min-max range, and per LMTP configuration (and for the import
with `--peer-src`) the ratio of the CPS median to the peer's median, and the median (min-max) of
the per-round ratios, which pair measurements taken one right after the other and so vary less
with other load on the machine.
Without Dovecot installed (or without root, which its master process needs) the peer is skipped.

Run it by hand:  .venv/bin/python bench/ingest.py [--messages N] [--rounds R] [--json]
                 [--skip-import | --skip-delivery] [--peer-src OTHER/src]
"""

from __future__ import annotations

import argparse
import json
import mailbox
import os
import platform
import re
import resource
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import cps
import dovecot
from common import percentile
from delivery import CPSServe, Envelope, deliver

REPOSITORY = Path(__file__).resolve().parents[1]
CORPUS = REPOSITORY.parent / "shared" / "corpus"
IMPORT_SOURCES = (("enron", "eml"), ("mbox", "mbox"))  # corpus folder, --format
USERS = tuple(f"user{n}@example.com" for n in range(8))
DELIVERY_CONFIGS = (("lmtp", 1), ("lmtp", 8), ("smtp", 1), ("smtp", 8))
CPS = [sys.executable, "-m", "cps"]
# `cps store serve` as measured, and with group commit off (each delivery its own transaction).
SERVE_OPTIONS = {"cps": (), "cps-single": ("--group-max-messages", "1")}


@dataclass(frozen=True, slots=True)
class Run:
    """One timed measurement."""

    benchmark: str  # "import", "import-only", "lmtp" or "smtp"
    server: str  # "cps", "dovecot", "peer-src" (--peer-src) or "cat+fdatasync"
    clients: int
    round: int
    messages: int
    bytes: int
    seconds: float
    # CPU time (user + system) of every process of the measurement, for the import and its peers:
    # unlike the wall time, hardly moved by other load on the machine.
    cpu_seconds: float | None = None
    p99_ms: float | None = None  # delivery latency, MAIL to the reply after DATA


def corpus_messages(corpus: Path) -> list[bytes]:
    """Every message of the import sources, in a fixed order: the .eml files, then each mbox's."""
    found = [path.read_bytes() for path in sorted((corpus / "enron").rglob("*.eml"))]
    for path in sorted((corpus / "mbox").glob("*.mbox")):
        box = mailbox.mbox(path, create=False)
        found.extend(box.get_bytes(key) for key in box.iterkeys())
        box.close()
    return found


def delivery_sample(messages: list[bytes], count: int) -> list[Envelope]:
    """`count` messages spread evenly over the corpus, with CRLF line endings, each for one user."""
    count = min(count, len(messages))
    picked = [messages[index * len(messages) // count] for index in range(count)]
    return [(USERS[n % len(USERS)], _crlf(raw)) for n, raw in enumerate(picked)]


def _crlf(raw: bytes) -> bytes:
    wire = re.sub(rb"\r?\n", b"\r\n", raw)
    return wire if wire.endswith(b"\r\n") else wire + b"\r\n"


def measure_import(
    corpus: Path, root: Path, round_number: int, server: str = "cps", src: Path | None = None
) -> list[Run]:
    """Two figures: the commands' wall time ("import") and the time the import itself reports,
    without interpreter start-up ("import-only"). With `src`, the CPS source tree there runs it."""
    env = {**os.environ, "PYTHONPATH": str(src)} if src else None
    database = root / "mail.db"
    subprocess.run([*CPS, "store", "create", str(database)], check=True, capture_output=True, env=env)
    reports = []
    cpu_before = _children_cpu()
    began = time.perf_counter()
    for source, kind in IMPORT_SOURCES:
        result = subprocess.run(
            [*CPS, "store", "import", str(database), str(corpus / source), "--format", kind,
             "--mailbox", USERS[0], "--folder", source, "--create-mailbox", "--json"],
            capture_output=True, text=True, env=env)
        if result.returncode != 0:
            raise RuntimeError(f"cps store import {source} exited {result.returncode}: {result.stderr}")
        reports.append(json.loads(result.stdout))
    seconds = time.perf_counter() - began
    cpu = _children_cpu() - cpu_before
    rejected = sum(report["rejected"] for report in reports)
    if rejected:
        raise RuntimeError(f"the import rejected {rejected} messages")
    messages = sum(report["imported"] for report in reports)
    size = sum(report["imported_bytes"] for report in reports)
    own_seconds = sum(report["seconds"] for report in reports)
    return [Run("import", server, 1, round_number, messages, size, seconds, cpu),
            Run("import-only", server, 1, round_number, messages, size, own_seconds)]


def _children_cpu() -> float:
    """CPU seconds of the child processes waited for so far (and of theirs, waited for by them)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def measure_copy(corpus: Path, root: Path, round_number: int, messages: int, size: int) -> Run:
    """The disk's part of an import: `cat` of the import sources' files into one new file, made
    durable with fdatasync (`dd conv=fdatasync`), timed like the import commands."""
    files = [str(p) for source, _kind in IMPORT_SOURCES for p in sorted((corpus / source).rglob("*"))
             if p.is_file()]
    cpu_before = _children_cpu()
    began = time.perf_counter()
    cat = subprocess.Popen(["xargs", "-0", "cat"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    dd = subprocess.Popen(["dd", f"of={root / 'copy'}", "bs=1M", "conv=fdatasync", "status=none"],
                          stdin=cat.stdout)
    assert cat.stdin is not None and cat.stdout is not None
    cat.stdout.close()
    cat.stdin.write("\0".join(files).encode())
    cat.stdin.close()
    if cat.wait() != 0 or dd.wait() != 0:
        raise RuntimeError("cat | dd failed")
    seconds = time.perf_counter() - began
    return Run("import", "cat+fdatasync", 1, round_number, messages, size, seconds,
               _children_cpu() - cpu_before)


def measure_delivery(
    server: str, protocol: str, clients: int, envelopes: list[Envelope], root: Path, round_number: int
) -> Run:
    peer = (dovecot.Dovecot(root) if server == "dovecot"
            else CPSServe(root, USERS, SERVE_OPTIONS[server]))
    latencies: list[float] = []
    with peer:
        try:
            seconds = deliver(protocol, peer.ports[protocol], envelopes, clients, latencies)
        except RuntimeError as error:
            raise RuntimeError(f"{error}\n{server}'s log ends:\n{peer.log_tail()}") from error
        stored = sum(peer.message_count(user) for user in USERS)
    if stored != len(envelopes):
        raise RuntimeError(f"{server} holds {stored} of the {len(envelopes)} delivered messages")
    return Run(protocol, server, clients, round_number, len(envelopes),
               sum(len(message) for _, message in envelopes), seconds,
               p99_ms=round(percentile(latencies, 0.99) * 1000, 2))


def machine(workdir: Path) -> dict[str, Any]:
    """What the figures were measured on; `workdir` is where the mail was written."""
    cpu = re.search(r"^model name\s*:\s*(.*)$", Path("/proc/cpuinfo").read_text(), re.MULTILINE)
    memory = re.search(r"^MemTotal:\s*(\d+) kB", Path("/proc/meminfo").read_text(), re.MULTILINE)
    return {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "nproc": os.cpu_count(),
        "cpu": cpu.group(1) if cpu else "unknown",
        "memory_gib": round(int(memory.group(1)) / 2**20, 1) if memory else None,
        "os": f"{platform.freedesktop_os_release().get('PRETTY_NAME', '')} {platform.platform()}",
        "file_system": _file_system(workdir),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "dovecot": dovecot.version() or None,
        "cps": f"{cps.__version__} {_commit()}",
    }


def _commit() -> str:
    """The checkout's commit, marked "+changes" when src/ differs from it."""
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(REPOSITORY), *args],
                              capture_output=True, text=True).stdout.strip()
    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    return f"{commit}+changes" if git("status", "--porcelain", "--", "src") else commit


def _file_system(path: Path) -> str:
    """The device and type of the file system holding `path`, as /proc/mounts names them."""
    mounts = [line.split() for line in Path("/proc/mounts").read_text().splitlines()]
    best = max((m for m in mounts if path.resolve().is_relative_to(m[1])), key=lambda m: len(m[1]))
    return f"{best[0]} {best[2]}"


def summarise(runs: list[Run]) -> list[dict[str, Any]]:
    """Median and range per (benchmark, clients, server); for CPS, the ratio of its median to its
    peer's (Dovecot, or --peer-src), and the ratios of the runs paired by round (measured one
    after the other)."""
    groups: dict[tuple[str, int, str], list[Run]] = {}
    for run in runs:
        groups.setdefault((run.benchmark, run.clients, run.server), []).append(run)
    rows: list[dict[str, Any]] = []
    for (benchmark, clients, server), group in groups.items():
        rates = [run.messages / run.seconds for run in group]
        speeds = [run.bytes / run.seconds / 1e6 for run in group]
        row: dict[str, Any] = {
            "benchmark": benchmark, "clients": clients, "server": server, "rounds": len(group),
            "messages": group[0].messages, "mb": round(group[0].bytes / 1e6, 3),
            "msg_per_s": statistics.median(rates), "msg_per_s_min": min(rates),
            "msg_per_s_max": max(rates), "mb_per_s": statistics.median(speeds),
            "mb_per_s_min": min(speeds), "mb_per_s_max": max(speeds),
            "cps_to_peer": None, "paired_ratios": [],
            "cpu_seconds": _median_cpu(group), "p99_ms": _median_p99(group),
        }
        peer = groups.get((benchmark, clients, "dovecot")) or groups.get(
            (benchmark, clients, "peer-src"))
        if server not in ("dovecot", "peer-src") and peer:
            row["cps_to_peer"] = row["msg_per_s"] / statistics.median(
                run.messages / run.seconds for run in peer)
            peer_seconds = {run.round: run.seconds for run in peer}
            row["paired_ratios"] = [peer_seconds[run.round] / run.seconds for run in group]
        rows.append(row)
    return rows


def _median_cpu(runs: list[Run]) -> float | None:
    measured = [run.cpu_seconds for run in runs if run.cpu_seconds is not None]
    return statistics.median(measured) if measured else None


def _median_p99(group: list[Run]) -> float | None:
    """The median over the rounds of each round's p99 delivery latency (None for an import)."""
    found = [run.p99_ms for run in group if run.p99_ms is not None]
    return statistics.median(found) if found else None


def render(rows: list[dict[str, Any]]) -> str:
    lines = [f"{'benchmark':<12} {'clients':>7} {'server':<8} {'msgs':>6} {'msg/s':>8} "
             f"{'(min-max)':>15} {'MB/s':>7} {'(min-max)':>13} {'cps/peer':>11} "
             f"{'paired (min-max)':>19} {'CPU s':>6} {'p99 ms':>7}"]
    for row in rows:
        ratio = f"{row['cps_to_peer']:.2f}" if row["cps_to_peer"] else ""
        paired = row["paired_ratios"]
        cpu = f"{row['cpu_seconds']:.2f}" if row["cpu_seconds"] is not None else ""
        pairs = (f"{statistics.median(paired):.2f} ({min(paired):.2f}-{max(paired):.2f})"
                 if paired else "")
        lines.append(
            f"{row['benchmark']:<12} {row['clients']:>7} {row['server']:<8} {row['messages']:>6} "
            f"{row['msg_per_s']:>8.1f} {row['msg_per_s_min']:>7.1f}-{row['msg_per_s_max']:<7.1f} "
            f"{row['mb_per_s']:>7.2f} {row['mb_per_s_min']:>6.2f}-{row['mb_per_s_max']:<6.2f} "
            f"{ratio:>11} {pairs:>19} {cpu:>6} {_shown(row['p99_ms']):>7}")
    return "\n".join(lines)


def _shown(value: float | None) -> str:
    return "" if value is None else f"{value:.1f}"


@contextmanager
def scratch(parent: Path) -> Iterator[Path]:
    """A fresh folder for one measurement, removed afterwards."""
    folder = Path(tempfile.mkdtemp(dir=parent))
    try:
        yield folder
    finally:
        shutil.rmtree(folder)


def run_rounds(args: argparse.Namespace, work: Path, note: Callable[[str], None]) -> list[Run]:
    messages = corpus_messages(args.corpus)
    envelopes = delivery_sample(messages, args.messages)
    servers = ["cps", *(["cps-single"] if args.single else []),
               *(["dovecot"] if not args.skip_delivery and peer_available(note) else [])]
    note(f"corpus: {len(messages)} messages; delivery sample: {len(envelopes)} messages, "
         f"{sum(len(m) for _, m in envelopes) / 1e6:.2f} MB")
    runs: list[Run] = []
    for number in range(1, args.rounds + 1):
        if not args.skip_import:
            runs.extend(import_round(args, work, number, note))
        for protocol, clients in () if args.skip_delivery else DELIVERY_CONFIGS:
            for server in servers:
                if server == "dovecot" and protocol != "lmtp":
                    continue  # Dovecot delivers over LMTP only
                with scratch(work) as root:
                    runs.append(measure_delivery(server, protocol, clients, envelopes, root, number))
                note(_progress(runs[-1]))
    return runs


def import_round(
    args: argparse.Namespace, work: Path, number: int, note: Callable[[str], None]
) -> list[Run]:
    """The import by this CPS, then by the one in --peer-src if given, then the copy."""
    runs: list[Run] = []
    importers = [("cps", None)] + ([("peer-src", args.peer_src)] if args.peer_src else [])
    for server, src in importers:
        with scratch(work) as root:
            runs.extend(measure_import(args.corpus, root, number, server, src))
    with scratch(work) as root:
        runs.append(measure_copy(args.corpus, root, number, runs[0].messages, runs[0].bytes))
    for run in runs:
        note(_progress(run))
    return runs


def peer_available(note: Callable[[str], None]) -> bool:
    if not dovecot.version():
        note("dovecot is not installed: the peer is skipped "
             "(apt-get install dovecot-core dovecot-lmtpd)")
        return False
    if os.geteuid() != 0:
        note("not root: Dovecot's master process needs root, the peer is skipped")
        return False
    return True


def _progress(run: Run) -> str:
    latency = "" if run.p99_ms is None else f", p99 {run.p99_ms} ms"
    return (f"round {run.round}: {run.benchmark} {run.server} clients={run.clients}: "
            f"{run.messages / run.seconds:.1f} msg/s, {run.bytes / run.seconds / 1e6:.2f} MB/s"
            f"{latency}")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=2000, help="delivery sample size (2000)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds, each runs everything once (3)")
    parser.add_argument("--corpus", type=Path, default=CORPUS, help=f"the mail corpus ({CORPUS})")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="where the temporary databases and mail go (the system temp folder)")
    parser.add_argument("--skip-import", action="store_true", help="measure delivery only")
    parser.add_argument("--skip-delivery", action="store_true", help="measure the import only")
    parser.add_argument("--peer-src", type=Path, default=None,
                        help="another CPS source tree (for example an earlier commit's src/, from "
                        "git worktree or git archive) whose import is measured in the same rounds")
    parser.add_argument("--single", action="store_true",
                        help="also measure CPS with group commit off (--group-max-messages 1)")
    parser.add_argument("--json", action="store_true", help="print one JSON document, not a table")
    args = parser.parse_args()
    if args.messages < 1 or args.rounds < 1:
        parser.error("--messages and --rounds must be at least 1")
    # SIGTERM unwinds like Ctrl-C, so the servers are stopped and the temporary folders removed.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(1))
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="cps-ingest-", dir=args.workdir) as work:
        Path(work).chmod(0o755)  # Dovecot's unprivileged processes work below it
        runs = run_rounds(args, Path(work), lambda text: print(text, file=sys.stderr, flush=True))
    rows = summarise(runs)
    if args.json:
        workdir = args.workdir or Path(tempfile.gettempdir())
        # Other work on the machine during the run shows in these; compare them across runs.
        load = {"before": load_before, "after": os.getloadavg()}
        document = {"machine": machine(workdir), "load_average": load,
                    "messages": args.messages, "rounds": args.rounds,
                    "summary": rows, "runs": [asdict(run) for run in runs]}
        print(json.dumps(document, indent=2))
    else:
        print(render(rows))


if __name__ == "__main__":
    main()
