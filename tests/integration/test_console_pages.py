"""The console's pages over plain HTTP: sessions and their cookie, CSRF, roles, and errors shown
as pages, never as a blank page or a 500. The browser tests (test_console_browser.py) click
through the same pages in Chromium."""

from __future__ import annotations

import json
from urllib.parse import urlencode

import httpx

from cps.store import MailDatabase
from tests.conftest import run_cps
from tests.integration.console_site import (
    ALICE,
    BOB,
    ConsoleSite,
)
from tests.integration.server_run import finished

RECOVER = "/databases/mail/recover"


def test_signing_in_gives_a_strict_http_only_cookie_and_never_a_token_in_a_page(
        console_site: ConsoleSite) -> None:
    with httpx.Client(base_url=console_site.base) as client:
        first = client.get("/")
        assert (first.status_code, first.headers["location"]) == (303, "/login")
        refreshed = client.get("/", headers={"HX-Request": "true"})  # a part refreshing itself
        assert (refreshed.status_code, refreshed.headers["hx-redirect"]) == (200, "/login")
        answered = client.post("/login", data={"token": console_site.token("operator"),
                                               "then": "/databases/mail"})
        assert (answered.status_code, answered.headers["location"]) == (303, "/databases/mail")
        cookie = answered.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie
        page = client.get("/databases/mail")
        assert page.status_code == 200
        assert console_site.token("operator") not in page.text
        policy = page.headers["content-security-policy"]
        assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy


def test_a_wrong_token_is_refused_in_words_and_then_limited(console_site: ConsoleSite) -> None:
    # Its own client address, so that its failures limit nobody else's tests.
    transport = httpx.HTTPTransport(local_address="127.0.0.9")
    with httpx.Client(base_url=console_site.base, transport=transport) as client:
        answers = [client.post("/login", data={"token": "cps_wrong"}) for _ in range(11)]
    assert [a.status_code for a in answers] == [401] * 10 + [429]
    assert "That token is not valid" in answers[0].text
    assert "Too many failed attempts" in answers[-1].text
    assert "set-cookie" not in answers[0].headers


def test_after_signing_in_only_pages_of_this_console_are_gone_to(
        console_site: ConsoleSite) -> None:
    with httpx.Client(base_url=console_site.base) as client:
        for then in ("//evil.example/", "https://evil.example/", "/\\evil.example"):
            answered = client.post("/login", data={"token": console_site.token("auditor"),
                                                   "then": then})
            assert answered.headers["location"] == "/", then


def test_the_console_cookie_does_not_open_the_api(console_site: ConsoleSite) -> None:
    """The API takes bearer tokens only: a page of another site that makes a browser send the
    cookie along gets nothing."""
    with console_site.signed_in("admin") as client:
        answered = client.get("/api/v1/databases")
    assert answered.status_code == 401
    assert answered.headers["content-type"] == "application/problem+json"


def test_a_form_without_the_session_csrf_token_changes_nothing(console_site: ConsoleSite) -> None:
    form = {"point": "point:before-delete", "mailbox": BOB, "folder": "Inbox", "scope": "folder"}
    with console_site.signed_in("operator") as client, \
            console_site.server.client("auditor") as api:
        jobs_before = len(api.get("/api/v1/jobs").json())
        refused = [client.post(RECOVER, data=form),
                   client.post(RECOVER, data=form | {"csrf": "forged"}),
                   client.post(RECOVER, data=form | {"csrf": console_site.csrf(client)},
                               headers={"Origin": "https://evil.example"})]
        assert [r.status_code for r in refused] == [403, 403, 403]
        assert "reload the page" in refused[0].text
        assert "evil.example cannot act" in refused[2].text
        assert len(api.get("/api/v1/jobs").json()) == jobs_before


def test_signing_out_and_revoking_the_token_each_end_a_session(console_site: ConsoleSite) -> None:
    with console_site.signed_in("operator") as client:
        out = client.post("/logout", data={"csrf": console_site.csrf(client)})
        assert (out.status_code, out.headers["location"]) == (303, "/login")
        assert client.get("/").status_code == 303

    config = console_site.server.site.config
    made = json.loads(run_cps("server", "token", "create", "--config", config, "--name",
                              "temporary", "--role", "operator", "--json").stdout)
    with httpx.Client(base_url=console_site.base) as other:
        assert other.post("/login", data={"token": made["token"]}).status_code == 303
        assert other.get("/").status_code == 200
        run_cps("server", "token", "revoke", "--config", config, made["id"])
        assert other.get("/").status_code == 303


def test_bad_requests_are_pages_that_say_what_to_do(console_site: ConsoleSite) -> None:
    browse = "/databases/mail/browse?"
    cases = {
        "/databases/nosuch": (404, "nosuch"),
        browse + urlencode({"point": "txn:99999999"}): (422, "99999999"),
        browse + urlencode({"point": "yesterday-ish"}): (400, "yesterday-ish"),
        browse + urlencode({"point": "latest", "mailbox": "nobody@example.com"}): (404, "nobody"),
        browse + urlencode({"point": "latest", "mailbox": ALICE, "folder": "No such"}): (404, "No such"),
        browse + urlencode({"point": "latest", "offset": "many"}): (400, "offset"),
        "/databases/mail/message?" + urlencode({"point": "latest", "mailbox": BOB,
                                                "folder": "Inbox", "uid": 99999}): (404, "99999"),
        "/databases/mail/search?" + urlencode({"point": "latest", "text": " "}): (400, "search"),
        "/jobs/nosuch": (404, "nosuch"),
    }
    with console_site.signed_in("operator") as client:
        for path, (status, named) in cases.items():
            answered = client.get(path)
            assert answered.status_code == status, (path, answered.text[:2000])
            assert answered.headers["content-type"].startswith("text/html"), path
            assert 'id="error"' in answered.text and named in answered.text, (path, answered.text)
        recovered = client.post(RECOVER, data={"csrf": console_site.csrf(client),
                                               "point": "latest", "mailbox": BOB,
                                               "folder": "Inbox", "scope": "selected"})
    assert recovered.status_code == 400 and "No message is selected" in recovered.text


def test_an_export_is_downloaded_from_its_job_page(console_site: ConsoleSite) -> None:
    with console_site.signed_in("operator") as client, \
            console_site.server.client("auditor") as api:
        started = client.post(RECOVER, data={"csrf": console_site.csrf(client),
                                             "point": "latest", "mailbox": BOB,
                                             "folder": "Inbox", "action": "export-mbox"})
        assert started.status_code == 303
        job_page = started.headers["location"]
        job_id = job_page.rsplit("/", 1)[1]
        done = finished(api, {"id": job_id, "links": {"self": f"/api/v1/jobs/{job_id}"}})
        assert done["state"] == "done", done
        assert f'href="/jobs/{job_id}/download"' in client.get(job_page).text
        download = client.get(f"/jobs/{job_id}/download")
    assert download.status_code == 200
    with MailDatabase.open(console_site.db, readonly=True) as live:
        inbox = live.messages(BOB, "Inbox")
    assert download.content.startswith(b"From ")
    assert download.content.count(b"\nFrom ") + 1 == len(inbox)
    with console_site.signed_in("auditor") as auditor:
        assert auditor.get(f"/jobs/{job_id}/download").status_code == 403


def test_a_recovery_point_made_from_the_timeline_is_on_it(console_site: ConsoleSite) -> None:
    with console_site.signed_in("operator") as client:
        made = client.post("/databases/mail/recovery-points",
                           data={"csrf": console_site.csrf(client), "name": "from the console"})
        assert (made.status_code, made.headers["location"]) == (303, "/databases/mail")
        timeline = client.get("/databases/mail").text
    assert 'data-point="from the console"' in timeline
    assert "recovery point from the console: transaction" in timeline  # on the axis too
    with console_site.signed_in("auditor") as auditor:
        refused = auditor.post("/databases/mail/recovery-points",
                               data={"csrf": console_site.csrf(auditor), "name": "not mine"})
        assert refused.status_code == 403
