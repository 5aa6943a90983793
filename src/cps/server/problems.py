"""Errors as RFC 9457 problem details (`application/problem+json`), never a bare 500 for bad input.

A CPSError becomes a problem whose `type` names its stable code (`urn:cps:error:<code>`, the codes
of docs/errors.md), with its message as `detail` and its hint as `hint`; the HTTP status says
whose the fault is. A request the API cannot read (malformed JSON, a missing or mistyped field, a
body too large, an unknown path) is a 4xx problem too. Anything else is a bug: 500, logged once
with its traceback, the response saying only that. The console's pages get the same errors as
pages (`install`'s `pages`): a person reads them, not a program.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from ..errors import CPSError

logger = logging.getLogger(__name__)

MEDIA_TYPE = "application/problem+json"
API_PATHS = ("/api/", "/metrics", "/openapi.json", "/docs", "/redoc")
# A page for an error: (request, status, code, detail, hint) -> response.
PageRenderer = Callable[[Request, int, str, str, "str | None"], Response]
STATUS_BY_CODE = {
    "usage": 400, "config": 400, "invalid-name": 400, "invalid-mail": 400,
    "not-found": 404, "not-a-store": 404, "not-a-repo": 404, "missing-database": 404,
    "exists": 409, "locked": 409, "capture": 409, "not-wal": 409,
    "not-covered": 422, "damaged": 422, "restore": 422,
    "store-busy": 503, "passphrase": 500, "format": 500, "corrupt": 500, "missing": 500,
    "filesystem": 500, "repository": 500, "store": 500,
}
TITLES = {400: "Bad request", 401: "Unauthorized", 403: "Forbidden", 404: "Not found",
          405: "Method not allowed", 409: "Conflict", 413: "Request too large",
          422: "Cannot be done", 429: "Too many requests", 500: "Server error",
          503: "Unavailable"}


def problem(status: int, code: str, detail: str, *, hint: str | None = None,
            headers: dict[str, str] | None = None, **extra: Any) -> JSONResponse:
    body = {"type": f"urn:cps:error:{code}", "title": TITLES.get(status, "Error"),
            "status": status, "detail": detail, "code": code, **extra}
    if hint:
        body["hint"] = hint
    return JSONResponse(body, status_code=status, media_type=MEDIA_TYPE, headers=headers)


PROBLEM_SCHEMA = {
    "title": "Problem", "type": "object", "required": ["type", "title", "status", "detail", "code"],
    "properties": {name: {"type": "integer" if name == "status" else "string"}
                   for name in ("type", "title", "status", "detail", "code", "hint")},
}


def install(app: FastAPI, pages: PageRenderer | None = None) -> None:
    """Make every error of `app` a problem, and its OpenAPI description say so; errors of paths
    outside the API go to `pages` when given."""
    _describe_problems(app)

    def for_page(request: Request) -> bool:
        return pages is not None and not request.url.path.startswith(API_PATHS)

    def answer(request: Request, status: int, code: str, detail: str, hint: str | None = None,
               headers: dict[str, str] | None = None) -> Response:
        if pages is not None and for_page(request):
            return pages(request, status, code, detail, hint)
        return problem(status, code, detail, hint=hint, headers=headers)

    @app.exception_handler(CPSError)
    async def cps_error(request: Request, error: CPSError) -> Response:
        status = STATUS_BY_CODE.get(error.code, 500)
        if status >= 500:
            logger.error("%s: %s", error.code, error.message)
        return answer(request, status, error.code, error.message, error.hint)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, error: RequestValidationError) -> Response:
        problems = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in error.errors()]
        hint = ("Follow the console's own links: this address was changed or cut short."
                if for_page(request) else "See /openapi.json for what this endpoint takes.")
        return answer(request, 400, "usage", "the request cannot be read: " + "; ".join(problems),
                      hint)

    @app.exception_handler(HTTPException)
    async def http(request: Request, error: HTTPException) -> Response:
        code = {401: "unauthorized", 403: "forbidden", 404: "not-found", 405: "usage",
                413: "too-large", 429: "too-many"}.get(error.status_code, "usage")
        return answer(request, error.status_code, code, str(error.detail),
                      headers=getattr(error, "headers", None))

    @app.exception_handler(Exception)
    async def bug(request: Request, error: Exception) -> Response:
        logger.exception("request failed")
        return answer(request, 500, "error", "the server failed on this request; its log says why")


def _describe_problems(app: FastAPI) -> None:
    """FastAPI describes a request it cannot read as its own 422 validation error; this API
    answers it with a 400 problem, and its description says that instead."""
    make = app.openapi

    def described() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = make()  # which keeps it as app.openapi_schema: changed here in place
            for operations in schema.get("paths", {}).values():
                for operation in operations.values():
                    responses = operation.get("responses", {})
                    if responses.pop("422", None) is not None:
                        responses["400"] = {
                            "description": "The request cannot be read (a problem, RFC 9457)",
                            "content": {MEDIA_TYPE: {
                                "schema": {"$ref": "#/components/schemas/Problem"}}}}
            schemas = schema.setdefault("components", {}).setdefault("schemas", {})
            for unused in ("HTTPValidationError", "ValidationError"):
                schemas.pop(unused, None)
            schemas["Problem"] = PROBLEM_SCHEMA
        return app.openapi_schema or {}

    app.openapi = described  # type: ignore[method-assign]
