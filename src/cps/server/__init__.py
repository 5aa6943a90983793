"""The CPS server: one service that runs the mail store's intake and protects every configured
database on schedule, with an HTTP API, metrics, tokens with roles and an audit log.

`run.py` starts it (`cps server --config cps.toml`); `service.py` holds its parts together:
protectors as supervised child processes (`supervisor.py`), the SMTP and LMTP intake, retention on
schedule, background jobs (`jobs.py`); the API (`api.py`, errors as problem details in
`problems.py`), tokens (`auth.py`), the audit log (`audit.py`),
status (`status.py`) and metrics (`metrics.py`). What it does to databases and repositories is the
application layer's (`cps.ops`), as for the command line.
"""

from .run import serve

__all__ = ["serve"]
