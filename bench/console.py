"""The web console on the ~1 GB protected store of bench/granular.py: the first paint of the
browse page at an arbitrary point, and the later pages of folders at that point, in Debian's
Chromium driven by Playwright; the JSON API's first and later listings of the same folders in the
same run, as the peer.

    python bench/console.py [--workdir /tmp/cps-bench-granular] [--rounds 5] [--json FILE]

The store is bench/granular.py's (built there once, reused). `cps server` protects it into its
repository (`recovery_point_every` and prune off), with an operator token; measuring starts once
the status says "protecting". Each round takes two arbitrary transactions from the "full" point
to the one before "after-delete" (archive@example.com/Projects/2019, 10,000 messages, exists at
both) and drops the page cache before each first look:

- console, first paint: a signed-in browser goes to the browse page of Projects/2019 at the first
  transaction (a point not open yet: the server opens it from the repository): the time from
  asking for the page to its `load` event, and the browser's first-contentful-paint entry;
- console, later pages: at that point, "Next" five times (50 messages a page: 50 to 300), then
  the folder user00@example.com/Inbox: each from the click (Playwright's, which first checks that
  the link can be clicked) to the new page's `load` (medians); of the "Next" pages also, as the
  browser's Navigation Timing has them, the navigation (its start to the end of the load event)
  and the answer (the request to the last byte of the answer);
- API, first listing: GET .../mail/mailboxes/archive@.../messages of the same folder at the
  second transaction, 50 messages; then later pages at that point (median of five offsets).

Medians, minima and maxima over the rounds are printed as one JSON document with the machine.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from common import drop_caches, load, machine, spread
from granular import ARCHIVE, DB_ID, FOLDER, build
from server import Server

PAGE_SIZE = 50  # the console's page of a folder, asked of the API too
LATER = 5
OTHER_FOLDER = ("user00@example.com", ("Inbox",))
MAIL = f"/api/v1/databases/{DB_ID}/mail/mailboxes"
# The first contentful paint of the page, once the browser has reported it.
FIRST_PAINT_MS = """new Promise(done => new PerformanceObserver(list => {
    const found = list.getEntries().find(e => e.name === 'first-contentful-paint');
    if (found) done(found.startTime);
}).observe({type: 'paint', buffered: true}))"""
# The page's navigation as the browser timed it: from its start to the end of its load event, and
# from its request to the last byte of the answer.
NAVIGATION_MS = ("(n => [n.loadEventEnd - n.startTime, n.responseEnd - n.requestStart])"
                 "(performance.getEntriesByType('navigation')[0])")


def browse_url(base: str, txn: int, address: str, folder: tuple[str, ...]) -> str:
    query = [("point", f"txn:{txn}"), ("mailbox", address), *(("folder", f) for f in folder)]
    return f"{base}/databases/{DB_ID}/browse?{urlencode(query)}"


def console_round(page: Any, base: str, txn: int) -> dict[str, float]:
    drop_caches()
    started = time.perf_counter()
    answer = page.goto(browse_url(base, txn, ARCHIVE, FOLDER), wait_until="load")
    first = time.perf_counter() - started
    assert answer.status == 200 and page.locator("tr[data-uid]").count() == PAGE_SIZE
    paint = page.evaluate(FIRST_PAINT_MS)
    later, navigation, answered = [], [], []
    for _ in range(LATER):
        started = time.perf_counter()
        with page.expect_navigation(wait_until="load"):
            page.click("a[rel=next]")
        later.append(time.perf_counter() - started)
        loaded, answer_ms = page.evaluate(NAVIGATION_MS)
        navigation.append(loaded / 1000)
        answered.append(answer_ms / 1000)
    started = time.perf_counter()
    page.goto(browse_url(base, txn, *OTHER_FOLDER), wait_until="load")
    other = time.perf_counter() - started
    return {"console_first_load": first, "console_first_paint": paint / 1000,
            "console_later_page": statistics.median(later),
            "console_later_page_navigation": statistics.median(navigation),
            "console_later_page_answer": statistics.median(answered),
            "console_other_folder": other}


def api_round(api: Any, txn: int) -> dict[str, float]:
    def listing(offset: int) -> float:
        params = [("point", f"txn:{txn}"), *(("folder", f) for f in FOLDER),
                  ("limit", PAGE_SIZE), ("offset", offset)]
        started = time.perf_counter()
        answer = api.get(f"{MAIL}/{ARCHIVE}/messages", params=params)
        seconds = time.perf_counter() - started
        assert answer.status_code == 200 and len(answer.json()["messages"]) == PAGE_SIZE
        return seconds

    drop_caches()
    first = listing(0)
    later = [listing(PAGE_SIZE * n) for n in range(1, LATER + 1)]
    return {"api_first_listing": first, "api_later_page": statistics.median(later)}


def sign_in(browser: Any, base: str, token: str) -> Any:
    page = browser.new_page(viewport={"width": 1440, "height": 900})
    page.goto(base + "/login")
    page.fill("#token", token)
    with page.expect_navigation():
        page.click("form[action='/login'] button")
    return page


def measure(workdir: Path, built: dict[str, Any], rounds: int) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright
    rng = random.Random(14)
    low, high = built["points"]["full"], built["points"]["after-delete"] - 1
    results: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(dir=workdir) as scratch, \
            Server(Path(scratch), {DB_ID: workdir / "mail.db"},
                   repositories={DB_ID: workdir / "repo"}) as server, \
            server.client() as api, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=shutil.which("chromium"),
                                             args=["--no-sandbox"])
        page = sign_in(browser, str(server.ready["api"]), server.token)
        for _ in range(rounds):
            measured = console_round(page, str(server.ready["api"]), rng.randint(low, high))
            measured |= api_round(api, rng.randint(low, high))
            for key, value in measured.items():
                results.setdefault(key, []).append(value)
        browser.close()
    ratios = [c / a for c, a in zip(results["console_first_load"], results["api_first_listing"],
                                    strict=True)]
    return {"seconds": {k: spread(v) for k, v in results.items()},
            "first_console_over_api": spread(ratios), "txn_range": [low, high]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/cps-bench-granular"))
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", type=Path, help="Also write the result to this file.")
    args = parser.parse_args()
    built = build(args.workdir, 1024)
    load_before = load()
    measured = measure(args.workdir, built, args.rounds)
    result = {"machine": machine(args.workdir), "store": built, "load_before": load_before,
              "load_after": load(), **measured}
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()
