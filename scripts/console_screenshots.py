"""Makes the screenshots of docs/console/ from a real console: `cps quickstart` in a temporary
folder, its Receipts folder deleted after the recovery point "quickstart", then, in Debian's
Chromium: the dashboard, the timeline, a folder at the point with a message previewed, and the
recovery of the deleted folder, done.

    .venv/bin/python scripts/console_screenshots.py [OUT]      (default: docs/console)
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from playwright.sync_api import Page, sync_playwright

MAILBOX = "user001@example.com"
DELETED = "Inbox/Receipts"
VIEWPORT = {"width": 1440, "height": 860}


def start_quickstart(folder: Path) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen([sys.executable, "-m", "cps", "quickstart", str(folder)],
                               stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    for line in process.stdout:
        found = re.match(r"\s+API\s+(http://\S+)", line)
        if found:
            return process, found[1]
    raise RuntimeError("cps quickstart stopped before it said where the API is")


def shoot(page: Page, base: str, token: str, out: Path) -> None:
    page.goto(base + "/login")
    page.fill("#token", token)
    page.click("form[action='/login'] button")
    page.wait_for_url(base + "/")
    page.screenshot(path=out / "dashboard.png")
    page.goto(f"{base}/databases/mail")
    page.screenshot(path=out / "timeline.png", full_page=True)
    page.goto(f"{base}/databases/mail/browse?point=point:quickstart&mailbox={MAILBOX}"
              "&folder=Inbox")
    page.click("table.messages tbody tr:nth-child(2) td.subject a")
    page.wait_for_selector("#preview article.message")
    page.check("table.messages tbody tr:nth-child(2) input[name=message]")
    page.screenshot(path=out / "browse.png")
    page.goto(f"{base}/databases/mail/browse?point=point:quickstart&mailbox={MAILBOX}"
              "&folder=Inbox&folder=Receipts")
    page.click("button:text('Recover this folder')")
    page.wait_for_selector("#job[data-state=done]")
    page.screenshot(path=out / "recover.png")


def main() -> None:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/console").resolve()
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch) / "quickstart"
        process, base = start_quickstart(folder)
        try:
            subprocess.run([sys.executable, "-m", "cps", "store", "folder", "delete",
                            str(folder / "mail.db"), f"{MAILBOX}/{DELETED}"], check=True)
            token = (folder / "admin.token").read_text().strip()
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=shutil.which("chromium"),
                                                     args=["--no-sandbox"])
                shoot(browser.new_page(viewport=VIEWPORT), base, token, out)
                browser.close()
        finally:
            process.send_signal(signal.SIGINT)
            process.wait(60)
    print(f"screenshots in {out}")


if __name__ == "__main__":
    main()
