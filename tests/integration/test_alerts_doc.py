"""docs/alerts.md: its scrape configuration and alert rules read as Prometheus reads them (YAML),
and every metric the rules use is one a running `cps server` exports at /metrics."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from tests.integration.server_run import make_site, running

DOC = Path(__file__).resolve().parents[2] / "docs" / "alerts.md"
SAMPLES = {"counter": ("",), "gauge": ("",), "histogram": ("_bucket", "_sum", "_count")}


def documents() -> list[Any]:
    """The YAML blocks of docs/alerts.md, parsed."""
    blocks = re.findall(r"^```yaml\n(.*?)^```$", DOC.read_text(), re.MULTILINE | re.DOTALL)
    return [yaml.safe_load(block) for block in blocks]


def rules() -> list[dict[str, Any]]:
    [groups] = [d["groups"] for d in documents() if "groups" in d]
    return [rule for group in groups for rule in group["rules"]]


def exported(exposition: str) -> set[str]:
    """The names of the samples a Prometheus exposition has or can have, from its TYPE lines."""
    names = set()
    for name, kind in re.findall(r"^# TYPE (\S+) (\S+)$", exposition, re.MULTILINE):
        names |= {name + suffix for suffix in SAMPLES.get(kind, ("",))}
    return names


def test_the_scrape_configuration_uses_an_auditor_token_file() -> None:
    [scrapes] = [d["scrape_configs"] for d in documents() if "scrape_configs" in d]
    [job] = scrapes
    assert job["metrics_path"] == "/metrics"
    assert job["authorization"]["type"] == "Bearer"
    assert job["authorization"]["credentials_file"]
    assert "--role auditor" in DOC.read_text()


def test_every_rule_says_what_fires_and_how_badly() -> None:
    found = rules()
    assert len({rule["alert"] for rule in found}) == len(found)
    for rule in found:
        assert rule["labels"]["severity"] in ("warning", "critical"), rule
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], rule


def test_every_metric_the_rules_use_is_exported(tmp_path: Path) -> None:
    with running(make_site(tmp_path, {"mail": []})) as server, server.client("auditor") as api:
        response = api.get("/metrics")
    assert response.status_code == 200, response.text
    used = {name for rule in rules() for name in re.findall(r"\bcps_\w+", rule["expr"])}
    assert len(used) >= 7
    assert sorted(used - exported(response.text)) == []
