"""The web console: what the server's API does, as pages a browser shows, at `/`.

Server-rendered pages (Jinja2 templates) with a little htmx (vendored under static/, with its
licence) for the parts that refresh by themselves; nothing is fetched from anywhere else. Signing
in takes a token, as the API does, and gives a session (sessions.py); pages.py has the routes.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from .pages import Console, install

STATIC = Path(__file__).parent / "static"


def install_console(app: FastAPI, console: Console) -> None:
    install(app, console)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")


__all__ = ["Console", "install_console"]
