"""The web console: what the server's API does, as pages a browser shows, at `/`.

Server-rendered pages (Jinja2 templates) with a little htmx (vendored under static/, with its
licence) for the parts that refresh by themselves; nothing is fetched from anywhere else. Signing
in takes a token, as the API does, and gives a session (sessions.py); pages.py has the routes.
"""

from __future__ import annotations

import os
from typing import Any

from fastapi import FastAPI
from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from .pages import STATIC, Console, install


class _KeptStatic(StaticFiles):
    """Static files a browser keeps (pages name them by their content's digest)."""

    def file_response(self, full_path: Any, stat_result: os.stat_result, scope: Scope,
                      status_code: int = 200) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        response.headers["Cache-Control"] = "public, max-age=31536000, immutable"
        return response


def install_console(app: FastAPI, console: Console) -> None:
    install(app, console)
    app.mount("/static", _KeptStatic(directory=STATIC), name="static")


__all__ = ["Console", "install_console"]
