"""The web console in a real headless Chromium against a real `cps server`: an operator
recovers a deleted folder from a recovery point by clicking through it, an auditor cannot open
mail, and a hostile message previews without running or loading anything."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from cps.store import MailDatabase
from tests.integration.console_site import (
    ALICE,
    HUGE_HEADER,
    ConsoleSite,
    project_files,
)

WAIT_MS = 60_000  # for a page or a job; the test fails, not hangs, when one never comes


@pytest.fixture
def page(browser: Any, console_site: ConsoleSite) -> Iterator[Any]:
    """A fresh browser context (no cookie), with every request it makes and every script error
    recorded."""
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    context.set_default_timeout(WAIT_MS)
    opened = context.new_page()
    opened.requests = []
    opened.problems = []
    opened.on("request", lambda request: opened.requests.append(request.url))
    opened.on("pageerror", lambda error: opened.problems.append(str(error)))
    opened.on("dialog", lambda dialog: opened.problems.append(f"dialog: {dialog.message}"))
    yield opened
    context.close()


def sign_in(page: Any, site: ConsoleSite, role: str) -> None:
    page.goto(site.base + "/")
    assert page.url.startswith(site.base + "/login")
    page.fill("#token", site.token(role))
    page.click("form[action='/login'] button")
    page.wait_for_url(site.base + "/")


def test_an_operator_recovers_a_deleted_folder_from_the_timeline(
        page: Any, console_site: ConsoleSite) -> None:
    site = console_site
    sign_in(page, site, "operator")
    assert page.locator("tr.db[data-db=mail] .state").inner_text() == "protecting"

    page.click("tr.db[data-db=mail] a")
    page.select_option("#point-list", label=f"before-delete (txn {site.before_delete})")
    assert page.input_value("#point") == "point:before-delete"
    page.click("#pick button:text('Browse at this point')")
    assert "before-delete" in page.locator(".pointbar").inner_text()

    page.click(f"nav.tree a:text-is('{ALICE}')")
    page.click("nav.tree a:text-is('Projects')")
    page.click("button:text('Recover this folder')")
    page.wait_for_url(re.compile(r".*/jobs/[0-9a-f]+$"))
    page.wait_for_selector("#job[data-state=done]")
    said = page.locator("#outcome").inner_text()
    assert f"Recovered {len(project_files())} messages" in said, said

    root = ("Recovered Items", "before-delete", "Projects")
    with MailDatabase.open(site.db, readonly=True) as live:
        recovered = [live.fetch_raw(m.id) for f in live.folders(ALICE) if f.path[:3] == root
                     for m in live.messages(ALICE, f.path)]
        assert not [f for f in live.folders(ALICE) if f.path[:1] == ("Projects",)]
    assert Counter(recovered) == Counter(project_files())
    assert page.problems == []


def test_an_auditor_sees_status_and_timelines_but_never_mail(
        page: Any, console_site: ConsoleSite) -> None:
    site = console_site
    sign_in(page, site, "auditor")
    page.click("tr.db[data-db=mail] a")
    assert page.locator("svg#axis rect.span").count() >= 1
    assert page.locator("#pick").count() == 0  # no way to browse is offered

    for path in (f"/databases/mail/browse?point=latest&mailbox={ALICE}&folder=Inbox",
                 f"/databases/mail/message?point=latest&mailbox={ALICE}&folder=Inbox&uid=1",
                 f"/databases/mail/message.html?point=latest&mailbox={ALICE}&folder=Inbox&uid=1",
                 "/databases/mail/search?point=latest&text=invoice"):
        answered = page.goto(site.base + path)
        assert answered.status == 403, path
        assert "needs the operator role" in page.locator("#error").inner_text()
        assert "Hostile" not in page.content() and "Invoice" not in page.content()


def test_a_hostile_message_is_previewed_without_running_or_loading_anything(
        page: Any, console_site: ConsoleSite) -> None:
    site = console_site
    sign_in(page, site, "operator")
    page.goto(f"{site.base}/databases/mail/browse?point=latest&mailbox={ALICE}&folder=Inbox")
    page.click("td.subject a:text('Hostile')")
    page.wait_for_selector("#preview article.message")
    frame_element = page.wait_for_selector("iframe.html-body")
    frame = frame_element.content_frame()
    frame.wait_for_load_state("load")
    assert "Dear customer" in frame.locator("body").inner_text()

    assert frame.locator("script, iframe, object, link, style, img[src], [onload], [onerror]"
                         ).count() == 0
    assert frame.locator("a[href^='javascript']").count() == 0
    for document in (page, frame):
        assert document.evaluate("document.body.dataset.pwned") is None
    assert frame_element.get_attribute("sandbox") == ""  # nothing allowed: no scripts, no origin

    preview = page.locator("#preview").inner_text()
    assert "<script>" in preview  # the text part's markup shown as text
    assert "more characters" in preview and len(preview) < HUGE_HEADER // 10
    assert site.trap.requests == []
    assert [url for url in page.requests if not url.startswith(site.base)] == []
    assert page.problems == []


def test_the_dashboard_follows_the_store_and_says_when_the_server_is_unreachable(
        page: Any, console_site: ConsoleSite) -> None:
    site = console_site
    sign_in(page, site, "auditor")
    cell = "tr.db[data-db=mail] td:nth-child(4)"
    before = page.locator(cell).inner_text()
    with MailDatabase.open(site.db) as live:
        live.deliver(b"Subject: new\r\nMessage-ID: <new@example.org>\r\n\r\nnew\r\n", [ALICE])
    page.wait_for_function("([cell, before]) => !document.querySelector(cell).innerText"
                           ".startsWith(before.split('\\n')[0])", arg=[cell, before])
    shown = page.locator(cell).inner_text()

    page.context.set_offline(True)
    page.wait_for_selector("#trouble:not([hidden])")
    assert "cannot be reached" in page.locator("#trouble").inner_text()
    assert page.locator(cell).inner_text() == shown  # what it showed stays
    page.context.set_offline(False)
    page.wait_for_selector("#trouble[hidden]", state="attached")
    assert page.problems == []
