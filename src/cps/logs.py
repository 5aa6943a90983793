"""Logging, configured once per process: one line per event, on stderr.

`configure("text")` writes lines for people ("2026-12-06T18:00:00.123Z INFO cps.server: message
key=value"), `configure("json")` one JSON object a line ({"time", "level", "logger", "message",
and the event's fields}). Modules log with `logging.getLogger(__name__)` and pass an event's
context in `extra={"fields": {...}}`; an error is logged once, where it is handled.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

FORMATS = ("text", "json")


class _Text(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        fields = getattr(record, "fields", None) or {}
        context = "".join(f" {key}={value}" for key, value in fields.items())
        line = f"{_time(record.created)} {record.levelname} {record.name}: {record.getMessage()}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line + context


class _Json(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        event: dict[str, Any] = {"time": _time(record.created), "level": record.levelname,
                                 "logger": record.name, "message": record.getMessage()}
        event.update(getattr(record, "fields", None) or {})
        if record.exc_info:
            event["exception"] = self.formatException(record.exc_info)
        return json.dumps(event, default=str, ensure_ascii=False)


def configure(log_format: str = "text", level: int = logging.INFO) -> None:
    """Send every log record of this process to stderr, in `log_format`, from `level` up."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Json() if log_format == "json" else _Text())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


def _time(created: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created)) + f".{int(created % 1 * 1000):03d}Z"
