"""Granular recovery on a ~1 GB protected mail store: first and later listings at a point, search at
a point, and recovering a 10,000-message folder into the live store.

    python bench/granular.py [--workdir /tmp/cps-bench-granular] [--size-mb 1024] [--rounds 3]
                             [--json FILE]

The store is built once in WORKDIR and reused by later runs (delete the folder to rebuild): messages
are appended in batches of 500 with `MailDatabase.append`. Every message is a real corpus message
(enron/) made unique by a first header line; one in four also carries a random 40-120 KB
attachment, which brings the mean size to about 29 KB, as real mailboxes with attachments have.
archive@example.com/Projects/2019 gets exactly 10,000 messages, the rest is spread over 20
mailboxes. Then `cps protect` starts in its own process (its first full backup holds everything)
and the history goes on: point "full", 200 workload operations, point "work", Projects/2019
deleted, point "after-delete", 100 more operations, point "end". (Filling the store while the
protector ran was the first plan; its incremental full backups of such big transactions did not
restore then, which is a capture matter, not this benchmark's.)

Each round takes an arbitrary transaction from "full" up to the one before "after-delete"
(Projects/2019 exists at each):

- first listing: `cps browse --txn T MAILBOX/FOLDER` in a new process after dropping the page cache
  (when permitted), and the same through the Python API (`open_snapshot` + 100 messages listed);
- later listings: at the point the API holds open, 100 more messages each time (median of 5), and
  the CLI again (a new process opens the point again, with a warm page cache);
- search at a point: at the open point, a full-text query (median of 5), and the CLI;
- the same point restored into a file with `cps.restore` (what making a point browsable cost
  before points were read straight from the repository), for comparison in the same run;
- recovery: `recover_into` of Projects/2019 from "work" into the live store while `cps protect`
  runs on it; the recovered folder is deleted again (not timed) before the next round.

Medians, minima and maxima of the rounds are printed as one JSON document with the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from email.message import EmailMessage
from email.parser import BytesHeaderParser
from email.policy import compat32
from pathlib import Path
from typing import Any

from common import CORPUS, drop_caches, load, machine, run_workload, spread
from cps.granular import RecoverRequest, Snapshot, open_snapshot, recover_into
from cps.repository import Repository
from cps.restore import Target, load_catalog, plan_restore, restore
from cps.store import AppendItem, MailDatabase, SearchQuery
from protectors import CPSProtector, tree_bytes

DB_ID = "bench"
ARCHIVE, FOLDER = "archive@example.com", ("Projects", "2019")
FOLDER_MESSAGES = 10_000
OTHER_MAILBOXES = 20
BATCH = 500
SEARCH_WORDS = "gas contract"
LATER_REPEATS = 5


def build(workdir: Path, size_mb: int) -> dict[str, Any]:
    """The protected store (see the module docstring); what was built, from built.json if done."""
    done = workdir / "built.json"
    if done.exists():
        return dict(json.loads(done.read_text()))
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    db, repo = workdir / "mail.db", workdir / "repo"
    cps("store", "create", db)
    started = time.monotonic()
    total = _fill(db, size_mb)
    filled = time.monotonic()
    points = {}
    with CPSProtector(db, workdir) as protector:  # the repository is workdir/repo, id "bench"
        full_seconds = protector.startup_seconds
        points["full"] = point(db, repo, "full")
        run_workload(db, ops=200, seed=1)
        points["work"] = point(db, repo, "work")
        cps("store", "folder", "delete", db, f"{ARCHIVE}/{'/'.join(FOLDER)}")
        points["after-delete"] = point(db, repo, "after-delete")
        run_workload(db, ops=100, seed=2)
        points["end"] = point(db, repo, "end")
    built = {"db_bytes": db.stat().st_size, "repo_bytes": tree_bytes(repo), "messages": total,
             "points": points, "fill_seconds": round(filled - started, 1),
             "first_full_seconds": round(full_seconds, 1)}
    done.write_text(json.dumps(built, indent=2))
    return built


def _fill(db: Path, size_mb: int) -> int:
    corpus = [p.read_bytes() for p in sorted((CORPUS / "enron").rglob("*.eml"))]
    rng = random.Random(2026)
    written = total = 0
    targets = [(f"user{n:02d}@example.com", path) for n in range(OTHER_MAILBOXES)
               for path in (("Inbox",), ("Archive", "2018"), ("Archive", "2017"))]
    with MailDatabase.open(db) as database:
        for address in [ARCHIVE] + sorted({a for a, _ in targets}):
            database.create_mailbox(address)
        while written < size_mb << 20:
            address, path = (ARCHIVE, FOLDER) if total < FOLDER_MESSAGES else rng.choice(targets)
            items = [AppendItem(path, _message(corpus, rng, total + n), 1_500_000_000 + total + n)
                     for n in range(BATCH)]
            database.append(address, items)
            written += sum(len(i.raw) for i in items)
            total += BATCH
    return total


def _message(corpus: list[bytes], rng: random.Random, n: int) -> bytes:
    raw = corpus[n % len(corpus)]
    if rng.random() >= 0.25:
        return b"X-CPS-Bench: %d\r\n" % n + raw
    headers = BytesHeaderParser(policy=compat32).parsebytes(raw)
    message = EmailMessage()
    for name in ("From", "To", "Subject", "Date"):
        if headers[name]:
            message[name] = str(headers[name]).replace("\n", " ").replace("\r", " ")
    message["Message-ID"] = f"<bench.{n}@example.com>"
    message.set_content(raw.partition(b"\n\n")[2].decode("utf-8", "replace"))
    message.add_attachment(rng.randbytes(rng.randint(40_000, 120_000)), maintype="application",
                           subtype="pdf", filename=f"report-{n}.pdf")
    return message.as_bytes()


def measure(workdir: Path, built: dict[str, Any], rounds: int) -> dict[str, Any]:
    db, repo_path = workdir / "mail.db", workdir / "repo"
    repo = Repository.open(repo_path)
    rng = random.Random(7)
    low, high = built["points"]["full"], built["points"]["after-delete"] - 1
    results: dict[str, list[float]] = {k: [] for k in (
        "first_cli", "first_api", "open_only", "later_api", "later_cli", "search_api",
        "search_cli", "restore_into_file", "recover_10k")}
    fulls_during_recovery = []
    folder = f"{ARCHIVE}/{'/'.join(FOLDER)}"
    for _ in range(rounds):
        txn = rng.randint(low, high)
        point_args = ("--db", DB_ID, "--txn", str(txn))
        results["first_cli"].append(timed_cli(cold=True, args=("browse", repo_path, *point_args,
                                                                folder)))
        drop_caches()
        started = time.perf_counter()
        with open_snapshot(repo, DB_ID, Target("txn", txn)) as snapshot:
            assert len(snapshot.database.messages(ARCHIVE, FOLDER, limit=100)) == 100
            results["first_api"].append(time.perf_counter() - started)
            results["open_only"].append(snapshot.seconds)
            pages = iter(range(1, LATER_REPEATS + 1))
            results["later_api"].append(median_of(LATER_REPEATS, _list, snapshot, pages))
            results["search_api"].append(median_of(LATER_REPEATS, _search, snapshot))
        results["later_cli"].append(timed_cli(cold=False, args=("browse", repo_path, *point_args,
                                                                folder)))
        results["search_cli"].append(timed_cli(cold=False, args=(
            "search", repo_path, *point_args, "--text", SEARCH_WORDS)))
        results["restore_into_file"].append(_restore_into_file(repo, workdir, txn))
        protector = CPSProtector(db, workdir)
        with protector:  # the live store stays protected while it recovers
            results["recover_10k"].append(_recover(repo, db, built["points"]["work"]))
        fulls_during_recovery.append(protector.count("full-backup"))
    return {"seconds": {k: spread(v) for k, v in results.items()}, "txn_range": [low, high],
            "full_backups_during_recovery": fulls_during_recovery}


def _list(snapshot: Snapshot, pages: Iterator[int]) -> None:
    offset = next(pages) * 100  # messages not listed yet: SQLite has not cached their rows
    assert len(snapshot.database.messages(ARCHIVE, FOLDER, limit=100, offset=offset)) == 100


def _search(snapshot: Snapshot) -> None:
    assert snapshot.database.search(SearchQuery(text=SEARCH_WORDS, limit=100))


def _restore_into_file(repo: Repository, workdir: Path, txn: int) -> float:
    output = workdir / "restored.db"
    drop_caches()
    started = time.perf_counter()
    with repo.reader_lock():
        restore(repo, plan_restore(load_catalog(repo, DB_ID), Target("txn", txn)), output,
                force=True)
    seconds = time.perf_counter() - started
    output.unlink()
    return seconds


def _recover(repo: Repository, db: Path, txn: int) -> float:
    with open_snapshot(repo, DB_ID, Target("txn", txn)) as snapshot, \
            MailDatabase.open(db) as live:
        started = time.perf_counter()
        report = recover_into(snapshot.database, snapshot.label, live, RecoverRequest(ARCHIVE, FOLDER))
        seconds = time.perf_counter() - started
        assert report.recovered == FOLDER_MESSAGES, report
        live.delete_folder(ARCHIVE, "Recovered Items")
    return seconds


def median_of(times: int, action: Any, *args: Any) -> float:
    values = []
    for _ in range(times):
        started = time.perf_counter()
        action(*args)
        values.append(time.perf_counter() - started)
    return sorted(values)[len(values) // 2]


def timed_cli(*, cold: bool, args: tuple[Any, ...]) -> float:
    if cold:
        drop_caches()
    started = time.perf_counter()
    cps(*args, "--json")
    return time.perf_counter() - started


def cps(*args: Any) -> str:
    out = subprocess.run([sys.executable, "-m", "cps", *map(str, args)], capture_output=True,
                         text=True)
    if out.returncode:
        raise RuntimeError(f"cps {' '.join(map(str, args))}: {out.stderr}")
    return out.stdout


def point(db: Path, repo: Path, name: str) -> int:
    return int(json.loads(cps("recovery-point", "create", db, "--repo", repo, "--db-id", DB_ID,
                              "--name", name, "--json"))["txn"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/cps-bench-granular"))
    parser.add_argument("--size-mb", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", type=Path, help="Also write the result to this file.")
    args = parser.parse_args()
    built = build(args.workdir, args.size_mb)
    load_before = load()
    measured = measure(args.workdir, built, args.rounds)
    result = {"machine": machine(args.workdir), "store": built, "load_before": load_before,
              "load_after": load(), "page_cache_dropped": drop_caches(), **measured}
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main()
