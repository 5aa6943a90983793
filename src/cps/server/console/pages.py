"""The console's pages: each route reads its request, calls what the API calls (the service,
mail_access.MailAccess, the ops layer) and renders a template. Nothing here decides anything the
JSON API would decide differently.

Roles as in the API: an auditor sees the dashboard, timelines and jobs; mail (browse, preview,
search, compare, recover, download) needs an operator. A page that fails says so in words, with
what to do, in place of what it would have shown (problems.install sends errors here).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fastapi import Depends, FastAPI, HTTPException, Query, Request, Response
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from ...errors import UsageError
from ...granular import RecoverRequest
from ...repository.catalog import load_catalog
from ...restore import build_timeline, format_ms
from ...store import SearchQuery
from ...store.names import check_address, check_folder_name
from ...store.transfer import Format
from ..mail_access import MailAccess
from ..mail_api import message_download
from ..service import Service
from ..status import database_status, every_status, with_times
from . import drawing, preview
from .sessions import COOKIE, Session, Sessions

STATIC = Path(__file__).parent / "static"
FOLDER = Query([])  # a folder's path: one parameter a name, from the top
PAGE_SIZE = 50  # messages on a page of a folder
MOST_HITS = 200

# The console's pages load only what the console serves; a message's HTML is framed from it.
PAGE_POLICY = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
               "frame-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'")
# What a framed message may load: nothing. No scripts run in it (sandbox), whatever it holds.
MESSAGE_POLICY = "default-src 'none'; frame-ancestors 'self'; sandbox"


def static_version() -> str:
    """A digest of the static files' content, which their addresses carry: a browser keeps each
    file for a year without asking again, and a new version has a new address."""
    digest = hashlib.sha256()
    for path in sorted(STATIC.iterdir()):
        digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()[:12]


class SignInNeeded(Exception):
    def __init__(self, then: str) -> None:
        self.then = then


class Console:
    def __init__(self, service: Service, mail: MailAccess) -> None:
        self.service = service
        self.mail = mail
        self.sessions = Sessions(service.tokens)
        self.templates = Environment(loader=PackageLoader("cps.server.console"),
                                     autoescape=select_autoescape(default=True),
                                     undefined=StrictUndefined)
        self.templates.filters.update(when=_when, ago=_ago, size=_size, point_query=_point_query)
        self.templates.globals["static_version"] = static_version()
        for name in self.templates.list_templates():  # compiled now, not on someone's first look
            self.templates.get_template(name)

    def page(self, request: Request, template: str, *, status: int = 200,
             session: Session | None = None, **context: Any) -> HTMLResponse:
        """`template` rendered, as a whole page or, for htmx, the fragment it asked for."""
        html = self.templates.get_template(template).render(
            session=session, partial=request.headers.get("hx-request") == "true",
            path=request.url.path, **context)
        return HTMLResponse(html, status_code=status, headers=_page_headers())

    def error_page(self, request: Request, status: int, code: str, detail: str,
                   hint: str | None) -> Response:
        if status == 401:
            return self.sign_in_first(request, request.url.path)
        session = self.sessions.get(request.cookies.get(COOKIE))
        return self.page(request, "error.html", status=status, session=session, code=code,
                         failure=status, detail=detail, hint=hint)

    def sign_in_first(self, request: Request, then: str) -> Response:
        """To the sign-in page, then back to `then`. A part of a page that refreshes itself
        (htmx) is told to take the whole page there: a redirect would put the sign-in page in
        its place."""
        target = "/login?" + urlencode({"then": then}) if then not in ("/", "") else "/login"
        if request.headers.get("hx-request") == "true":
            return Response(headers={"HX-Redirect": target})
        return RedirectResponse(target, status_code=303)

    def viewer(self, role: str) -> Callable[[Request], Session]:
        """A dependency: the session of the request, whose principal has `role`."""
        def session_of(request: Request) -> Session:
            session = self.sessions.get(request.cookies.get(COOKIE))
            if session is None:
                query = f"?{request.url.query}" if request.url.query else ""
                raise SignInNeeded(request.url.path + query if request.method == "GET" else "/")
            if not session.principal.may(role):
                raise HTTPException(403, f"this page needs the {role} role; you are signed in as "
                                         f"{session.principal.name}, an {session.principal.role}")
            return session
        return session_of


def install(app: FastAPI, console: Console) -> None:
    @app.exception_handler(SignInNeeded)
    async def sign_in(request: Request, needed: SignInNeeded) -> Response:
        return console.sign_in_first(request, needed.then)

    _session_routes(app, console)
    _status_routes(app, console)
    _mail_routes(app, console)
    _action_routes(app, console)


def _session_routes(app: FastAPI, console: Console) -> None:
    service = console.service

    @app.get("/login", include_in_schema=False)
    def login_page(request: Request, then: str = "/") -> Response:
        return console.page(request, "login.html", then=_local(then), failed=None)

    @app.post("/login", include_in_schema=False)
    async def login(request: Request) -> Response:
        _same_origin(request)
        form = await request.form()
        then = _local(str(form.get("then") or "/"))
        client = request.client.host if request.client else "unknown"
        wait = service.failures.blocked(client)
        if wait:
            return console.page(request, "login.html", status=429, then=then,
                                failed=f"Too many failed attempts: try again in {wait:.0f} s.")
        session = console.sessions.start(str(form.get("token") or "").strip())
        if session is None:
            service.failures.failed(client)
            return console.page(request, "login.html", status=401, then=then,
                                failed="That token is not valid. Check that it was copied "
                                       "whole; `cps server token list` shows the tokens.")
        service.audit.record(session.principal, "sign-in", None)
        answer = RedirectResponse(then, status_code=303)
        answer.set_cookie(COOKIE, session.key, httponly=True, samesite="strict",
                          secure=request.url.scheme == "https", path="/")
        return answer

    signed_in = Depends(console.viewer("auditor"))

    @app.post("/logout", include_in_schema=False)
    async def logout(request: Request, session: Session = signed_in) -> Response:
        await _check_csrf(request, session)
        console.sessions.end(session.key)
        service.audit.record(session.principal, "sign-out", None)
        answer = RedirectResponse("/login", status_code=303)
        answer.delete_cookie(COOKIE, path="/")
        return answer


def _status_routes(app: FastAPI, console: Console) -> None:
    service = console.service
    auditor = Depends(console.viewer("auditor"))

    @app.get("/", include_in_schema=False)
    def dashboard(request: Request, session: Session = auditor) -> Response:
        return console.page(request, "dashboard.html", session=session,
                            databases=every_status(service), jobs=service.jobs.all()[-10:][::-1],
                            now=time.time())

    @app.get("/databases/{db_id}", include_in_schema=False)
    def timeline(request: Request, db_id: str, session: Session = auditor) -> Response:
        service.settings(db_id)
        catalog = load_catalog(service.repository(db_id), db_id)
        found = build_timeline(catalog)
        return console.page(request, "timeline.html", session=session, db_id=db_id,
                            timeline=found.to_json(),
                            drawing=drawing.draw(catalog, int(time.time() * 1000)),
                            database=with_times(database_status(service, db_id)))

    @app.get("/jobs/{job_id}", include_in_schema=False)
    def job_page(request: Request, job_id: str, session: Session = auditor) -> Response:
        return console.page(request, "job.html", session=session, job=service.jobs.found(job_id))


def _mail_routes(app: FastAPI, console: Console) -> None:
    service, mail = console.service, console.mail
    operator = Depends(console.viewer("operator"))

    @app.get("/databases/{db_id}/browse", include_in_schema=False)
    def browse(request: Request, db_id: str, point: str = "latest", mailbox: str | None = None,
               folder: list[str] = FOLDER, offset: int = 0,
               session: Session = operator) -> Response:
        address = check_address(mailbox) if mailbox else None
        listing = mail.listing(session.principal, db_id, point, address, _path(folder),
                               limit=PAGE_SIZE, offset=max(0, offset))
        return console.page(request, "browse.html", session=session, db_id=db_id,
                            listing=listing, point=_stable(point, listing.point),
                            page_size=PAGE_SIZE)

    @app.get("/databases/{db_id}/message", include_in_schema=False)
    def message(request: Request, db_id: str, point: str, mailbox: str, uid: int,
                folder: list[str] = FOLDER, session: Session = operator) -> Response:
        seen, view = mail.show(session.principal, db_id, point, check_address(mailbox),
                               _path(folder), str(uid))
        return console.page(request, "message.html", session=session, db_id=db_id,
                            point=point, seen=seen, view=view, preview=preview.preview(view))

    @app.get("/databases/{db_id}/message.html", include_in_schema=False)
    def message_html(db_id: str, point: str, mailbox: str, uid: int,
                     folder: list[str] = FOLDER, session: Session = operator) -> Response:
        _seen, view = mail.show(session.principal, db_id, point, check_address(mailbox),
                                _path(folder), str(uid))
        html = preview.html_part(view.raw)
        return HTMLResponse(preview.cleaned(html or ""), headers={
            "Content-Security-Policy": MESSAGE_POLICY, "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer", "Cache-Control": "no-store"})

    @app.get("/databases/{db_id}/message.eml", include_in_schema=False)
    def message_raw(db_id: str, point: str, mailbox: str, uid: int,
                    folder: list[str] = FOLDER, session: Session = operator) -> Response:
        _seen, view = mail.show(session.principal, db_id, point, check_address(mailbox),
                                _path(folder), str(uid), raw=True)
        return message_download(view)

    @app.get("/databases/{db_id}/search", include_in_schema=False)
    def search(request: Request, db_id: str, point: str, text: str = "",
               mailbox: str | None = None, session: Session = operator) -> Response:
        if not text.strip():
            raise UsageError("type what to search for", hint="Words of the subject, the "
                             "sender or the text; all of them must be in a message.")
        address = check_address(mailbox) if mailbox else None
        seen, hits = mail.search(session.principal, db_id, point,
                                 SearchQuery(text=text, limit=MOST_HITS), address, (),
                                 text=text, mailbox=address)
        return console.page(request, "search.html", session=session, db_id=db_id,
                            point=_stable(point, seen), seen=seen, text=text, hits=hits,
                            mailbox=address, most=MOST_HITS)

    @app.get("/databases/{db_id}/compare", include_in_schema=False)
    def compare(request: Request, db_id: str, earlier: str | None = None, later: str = "live",
                mailbox: str | None = None, point: str | None = None,
                session: Session = operator) -> Response:
        service.settings(db_id)
        earlier = earlier or point  # the timeline's form names it the point
        points = load_catalog(service.repository(db_id), db_id).points
        address = check_address(mailbox) if mailbox else None
        compared = (mail.compare(session.principal, db_id, earlier,
                                 None if later == "live" else later, address)
                    if earlier else None)
        return console.page(request, "compare.html", session=session, db_id=db_id,
                            points=points, earlier=earlier, later=later, mailbox=address,
                            compared=compared)


def _action_routes(app: FastAPI, console: Console) -> None:
    service, mail = console.service, console.mail
    operator = Depends(console.viewer("operator"))

    @app.post("/databases/{db_id}/recover", include_in_schema=False)
    async def recover(request: Request, db_id: str, session: Session = operator) -> Response:
        form = await _check_csrf(request, session)
        point, address = str(form.get("point") or ""), check_address(str(form.get("mailbox")))
        path = _path([str(name) for name in form.getlist("folder")])
        scope, action = form.get("scope"), str(form.get("action") or "recover")
        if scope == "mailbox":
            path = ()
        elif not path:
            raise UsageError("choose a folder first", hint="Open the folder in the tree.")
        if action.startswith("export"):
            kind = Format("eml" if action == "export-eml" else "mbox")
            job = mail.export(session.principal, db_id, point, address, path, kind,
                              {"mailbox": address, "folder": list(path), "format": kind.value})
        else:
            job = mail.recover(session.principal, db_id, point,
                               _recover_request(form, scope, address, path),
                               {"mailbox": address, "folder": list(path), "scope": scope,
                                "merge": form.get("merge") == "yes"})
        return RedirectResponse(f"/jobs/{job.id}", status_code=303)

    @app.post("/databases/{db_id}/recovery-points", include_in_schema=False)
    async def new_point(request: Request, db_id: str, session: Session = operator) -> Response:
        form = await _check_csrf(request, session)
        name = str(form.get("name") or "").strip() or None
        service.make_point(db_id, name, session.principal)
        return RedirectResponse(f"/databases/{db_id}", status_code=303)

    @app.get("/jobs/{job_id}/download", include_in_schema=False)
    def download(job_id: str, session: Session = operator) -> Response:
        made = service.job_file(job_id, session.principal)
        return FileResponse(made, filename=made.name)


def _recover_request(form: Any, scope: object, address: str, path: tuple[str, ...]
                     ) -> RecoverRequest:
    uids = tuple(str(uid) for uid in form.getlist("message")) if scope == "selected" else ()
    if scope == "selected" and not uids:
        raise UsageError("no message is selected", hint="Tick the messages to recover, or "
                         "recover the whole folder.")
    return RecoverRequest(address, path, uids, None, form.get("merge") == "yes", 500)


async def _check_csrf(request: Request, session: Session) -> Any:
    """The request's form, once it is known to come from the console's own page."""
    _same_origin(request)
    form = await request.form()
    given = request.headers.get("x-csrf-token") or form.get("csrf")
    if not session.csrf_matches(given if isinstance(given, str) else None):
        raise HTTPException(403, "this form is out of date or did not come from the console; "
                                 "reload the page and try again")
    return form


def _same_origin(request: Request) -> None:
    # Pages are served with Referrer-Policy same-origin, so a browser names their origin here.
    origin = request.headers.get("origin")
    if origin and origin != f"{request.url.scheme}://{request.url.netloc}":
        raise HTTPException(403, f"a form of {origin} cannot act on this console")


def _path(names: list[str]) -> tuple[str, ...]:
    return tuple(check_folder_name(name) for name in names)


def _stable(asked: str, seen: dict[str, Any]) -> str:
    """How links name the point shown: a recovery point or a transaction as asked, anything
    else (latest, a time) as the transaction it was, so that the next page shows the same."""
    return asked if asked.startswith(("point:", "txn:")) else f"txn:{seen['txn']}"


def _local(then: str) -> str:
    """Where to go after signing in: a path of this console, never another site."""
    return then if then.startswith("/") and not then.startswith(("//", "/\\")) else "/"


def _page_headers() -> dict[str, str]:
    return {"Content-Security-Policy": PAGE_POLICY, "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "same-origin", "X-Frame-Options": "DENY",
            "Cache-Control": "no-store"}


def _when(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    return format_ms(int(seconds * 1000))[:19].replace("T", " ")


def _ago(seconds: float | None, now: float) -> str:
    if seconds is None:
        return ""
    delta = now - seconds
    if delta < 0:
        return f"in {_duration(-delta)}"
    return f"{_duration(delta)} ago"


def _duration(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f} {unit}"
    return f"{seconds:.0f} s"


def _size(count: int | None) -> str:
    if count is None:
        return "–"
    amount = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if amount < 1024:
            return f"{amount:.0f} {unit}" if unit == "B" else f"{amount:.1f} {unit}"
        amount /= 1024
    return f"{amount:.1f} TiB"


def _point_query(point: str, mailbox: str | None = None, folder: tuple[str, ...] | list[str] = (),
                 **more: Any) -> str:
    """The query string of a link at `point`, in `mailbox` and `folder`."""
    pairs: list[tuple[str, Any]] = [("point", point)]
    if mailbox:
        pairs.append(("mailbox", mailbox))
    pairs += [("folder", name) for name in folder]
    pairs += [(k, v) for k, v in more.items() if v is not None]
    return urlencode(pairs)
