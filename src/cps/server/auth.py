"""Who may do what: bearer tokens with roles, stored only as hashes, and a limit on failures.

A token is `cps_` and 43 random URL-safe characters (256 bits), shown once when it is made
(`cps server token create`). The server keeps its SHA-256 only, in `<state_dir>/tokens.json`
(written whole, atomically): a stolen file gives no token, and a token that random needs no slow
hash. Roles, each allowing what the one before allows:

    auditor   status, timelines, metrics; never mail content
    operator  and recovery points, full backups, restores, browsing and recovering mail
    admin     and everything else

A client that presents wrong tokens FAILURES_ALLOWED times within FAILURE_WINDOW seconds is
refused (429) until the window has passed, whatever it presents.
"""

from __future__ import annotations

import collections
import hashlib
import hmac
import json
import secrets
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from ..durable import atomic_write, make_folders
from ..errors import UsageError

ROLES = ("auditor", "operator", "admin")
FAILURES_ALLOWED = 10
FAILURE_WINDOW = 60.0


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a request comes from: the token's name and role."""

    name: str
    role: str

    def may(self, role: str) -> bool:
        """Whether this principal has `role` or a role above it."""
        return ROLES.index(self.role) >= ROLES.index(role)


@dataclass(frozen=True, slots=True)
class TokenRecord:
    id: str  # the first characters of the token's hash: what lists and revocations name
    name: str
    role: str
    sha256: str
    created_at: int


class TokenStore:
    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / "tokens.json"
        self._lock = threading.Lock()

    def create(self, name: str, role: str) -> tuple[str, TokenRecord]:
        """A new token for `name` with `role`: the token itself (to show once) and its record."""
        if role not in ROLES:
            raise UsageError(f"no role {role!r}", hint=f"Roles: {', '.join(ROLES)}.")
        if not name.strip():
            raise UsageError("a token needs a name", hint="Name who or what will use it.")
        token = "cps_" + secrets.token_urlsafe(32)
        digest = _digest(token)
        record = TokenRecord(digest[:12], name, role, digest, int(time.time()))
        with self._lock:
            self._save([*self.records(), record])
        return token, record

    def records(self) -> list[TokenRecord]:
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return []
        return [TokenRecord(**entry) for entry in data["tokens"]]

    def revoke(self, token_id: str) -> TokenRecord:
        with self._lock:
            records = self.records()
            found = [r for r in records if r.id == token_id]
            if not found:
                raise UsageError(f"no token {token_id!r}",
                                 hint="'cps server token list' shows the tokens.")
            self._save([r for r in records if r.id != token_id])
        return found[0]

    def principal(self, token: str) -> Principal | None:
        """Who `token` belongs to, or None."""
        digest = _digest(token)
        for record in self.records():
            if hmac.compare_digest(record.sha256, digest):
                return Principal(record.name, record.role)
        return None

    def _save(self, records: list[TokenRecord]) -> None:
        make_folders(self.path.parent)
        data = {"tokens": [asdict(r) for r in records]}
        atomic_write(self.path, json.dumps(data, indent=1).encode())
        self.path.chmod(0o600)


class FailureLimit:
    """Failed authentications per client, over a sliding window."""

    def __init__(self, allowed: int = FAILURES_ALLOWED, window: float = FAILURE_WINDOW) -> None:
        self.allowed = allowed
        self.window = window
        self._failures: dict[str, collections.deque[float]] = {}
        self._lock = threading.Lock()

    def blocked(self, client: str) -> float:
        """Seconds until `client` may try again (0: it may now)."""
        with self._lock:
            recent = self._recent(client)
            if len(recent) < self.allowed:
                return 0.0
            return max(0.0, recent[0] + self.window - time.monotonic())

    def failed(self, client: str) -> None:
        with self._lock:
            self._recent(client).append(time.monotonic())

    def _recent(self, client: str) -> collections.deque[float]:
        recent = self._failures.setdefault(client, collections.deque())
        while recent and recent[0] < time.monotonic() - self.window:
            recent.popleft()
        return recent


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
