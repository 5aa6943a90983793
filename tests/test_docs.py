"""Documentation and structure that must not drift from the code."""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import click
import pytest

from cps.config import load_config
from cps.errors import ALL_ERRORS
from cps.server.api import build_app
from cps.server.service import Service
from tests.cli_commands import commands

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "cps"

# Which parts each part may import (besides the foundations and itself). cli and server may
# import anything.
FOUNDATIONS = {"errors", "durable", "config"}
ALLOWED = {
    "store": set(),
    "repository": set(),
    "capture": {"repository"},
    "restore": {"repository"},
    "granular": {"store", "repository", "restore"},
    "verify": {"store", "repository", "restore"},
    "ops": {"store", "repository", "capture", "restore", "granular"},
    "client": set(),
}


def test_every_path_in_the_architecture_exists() -> None:
    text = (ROOT / "docs" / "ARCHITECTURE.md").read_text()
    paths = {p for p in re.findall(r"`([^`\s]+)`", text) if "/" in p and not p.startswith("<")}
    assert paths, "the architecture names no paths"
    missing = sorted(p for p in paths if not (ROOT / p).exists())
    assert missing == []


@pytest.mark.parametrize("path, command", commands(), ids=lambda v: v if isinstance(v, str) else "")
def test_every_command_has_help_with_examples(path: str, command: click.Command) -> None:
    assert command.help, f"{path} has no help"
    assert "Examples:" in command.help, f"{path} has no Examples block"


def test_every_error_code_is_documented() -> None:
    text = (ROOT / "docs" / "errors.md").read_text()
    for error in ALL_ERRORS:
        assert f"| `{error.code}` | {error.exit_status} |" in text, error.__name__


def test_the_unit_may_write_what_the_deployment_guide_configures(tmp_path: Path) -> None:
    """docs/deploy.md's configuration is one the server reads, and contrib/cps.service runs the
    server on it and lets it write every folder it names (the rest is read-only to it)."""
    [toml] = re.findall(r"^```toml\n(.*?)^```$", (ROOT / "docs" / "deploy.md").read_text(),
                        re.MULTILINE | re.DOTALL)
    (tmp_path / "cps.toml").write_text(toml)
    config = load_config(tmp_path / "cps.toml")
    unit = dict(re.findall(r"^(\w+)=(.*)$", (ROOT / "contrib" / "cps.service").read_text(),
                           re.MULTILINE))
    assert unit["ExecStart"].endswith(" server --config /etc/cps/cps.toml")
    writable = [Path(path) for path in unit["ReadWritePaths"].split()]
    written = [config.server.state_dir, *(d.path.parent for d in config.databases),
               *(d.repository for d in config.databases)]
    assert [w for w in written if not any(w.is_relative_to(root) for root in writable)] == []


# "GET /api/v1/jobs/{job_id}" as docs/api.md names a route, anywhere in its text.
ROUTE_NAMED = re.compile(r"\b(GET|HEAD|POST|PUT|PATCH|DELETE) (/[^\s`|?,;)]*)")


def _route(method: str, path: str) -> str:
    """A route as docs and code may both write it: a path parameter's name (and its converter,
    `{selector:path}`) is the writer's choice, so every one is `{}`."""
    return f"{method} {re.sub(r'{[^}]*}', '{}', path.rstrip('.'))}"


@pytest.fixture(scope="module")
def app_routes(tmp_path_factory: pytest.TempPathFactory) -> tuple[set[str], set[str]]:
    """The routes of the server's API, built on a configuration of no database (nothing is
    started): those of its OpenAPI description, and every route it serves (with /docs and such)."""
    folder = tmp_path_factory.mktemp("api")
    (folder / "cps.toml").write_text('[server]\nstate_dir = "state"\n')
    service = Service(load_config(folder / "cps.toml"))
    try:
        app = build_app(service)
        described = {_route(method.upper(), path) for path, operations in
                     app.openapi()["paths"].items() for method in operations}
        served = {_route(method, route.path) for route in app.routes
                  for method in getattr(route, "methods", None) or ()}
    finally:
        for close in service.on_stop:
            close()
        service.jobs.shutdown()
    return described, served


def _documented_routes() -> set[str]:
    """The routes docs/api.md names; `/mail/...` is below a database, as its mail section says."""
    text = (ROOT / "docs" / "api.md").read_text()
    return {_route(method, "/api/v1/databases/{db_id}" + path if path.startswith("/mail/")
                   else path) for method, path in ROUTE_NAMED.findall(text)}


def test_every_route_of_the_api_is_documented(app_routes: tuple[set[str], set[str]]) -> None:
    described, _served = app_routes
    assert len(described) > 10, described
    assert sorted(described - _documented_routes()) == []


def test_every_route_the_api_document_names_is_served(app_routes: tuple[set[str], set[str]]
                                                     ) -> None:
    _described, served = app_routes
    assert sorted(_documented_routes() - served) == []


@pytest.mark.parametrize("part", ["store", "repository", "capture", "restore", "granular",
                                  "verify"])
def test_public_surface_is_what_all_says(part: str) -> None:
    module = importlib.import_module(f"cps.{part}")
    exported = module.__all__
    assert sorted(exported) == sorted(set(exported))
    for name in exported:
        assert hasattr(module, name), f"cps.{part}.{name} is listed but missing"
    assert module.__doc__ and len(module.__doc__) > 80


def _imported_parts(path: Path) -> set[str]:
    """The top-level parts of cps (store, capture, ...) that a module imports."""
    package = path.relative_to(SRC.parent).with_suffix("").parts[:-1]  # e.g. ("cps", "store")
    parts = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package[: len(package) - node.level + 1]
            target = (*base, *(node.module.split(".") if node.module else ()))
            parts.add(target[1] if len(target) > 1 else node.names[0].name)
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("cps"):
            parts.add("absolute import of " + node.module)
    return parts


@pytest.mark.parametrize("part", sorted(ALLOWED))
def test_parts_import_only_the_layers_below(part: str) -> None:
    offending = []
    for path in sorted((SRC / part).rglob("*.py")):
        for other in _imported_parts(path) - ALLOWED[part] - FOUNDATIONS - {part}:
            offending.append(f"{path.relative_to(ROOT)} imports {other}")
    assert offending == []


def _console_routes(served: set[str], described: set[str]) -> set[str]:
    """What the server serves beside its API: the console's pages (its static files are a mount,
    not routes) and the API's own descriptions."""
    descriptions = ("/openapi.json", "/docs", "/redoc")
    return {r for r in served - described if not r.split(" ")[1].startswith(descriptions)}


def test_the_console_document_names_every_page_and_no_other(
        app_routes: tuple[set[str], set[str]]) -> None:
    described, served = app_routes
    pages = _console_routes(served, described)
    assert "GET /databases/{}/browse" in pages, pages
    named = {_route(method, path) for method, path
             in ROUTE_NAMED.findall((ROOT / "docs" / "console.md").read_text())
             if not path.startswith("/static/")}
    assert (sorted(pages - named), sorted(named - pages)) == ([], [])
