"""Console sessions: a token given once at the login page, then a cookie.

The cookie holds only a random session key (256 bits); the server keeps the session in memory, so
a restart signs everyone out. The cookie is `HttpOnly` (no script reads it), `SameSite=Strict`
(no other site's page sends it) and `Secure` when the console is reached over HTTPS. A session ends after
IDLE_SECONDS without a request, after LIFETIME_SECONDS in all, at sign-out, and at once when its
token is revoked: every request checks the token again, so its role is always the token's now.

Every request that changes something (a POST) must carry the session's CSRF token, as the form
field `csrf` or the header `X-CSRF-Token`, and come from the console's own origin when the
browser says where it comes from.
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from dataclasses import dataclass, field

from ..auth import Principal, TokenStore

COOKIE = "cps_session"
IDLE_SECONDS = 30 * 60.0
LIFETIME_SECONDS = 12 * 3600.0


@dataclass
class Session:
    key: str
    token: str  # checked again on every request: a revoked token ends the session
    principal: Principal
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    started: float = field(default_factory=time.monotonic)
    last_used: float = field(default_factory=time.monotonic)

    def csrf_matches(self, given: str | None) -> bool:
        return given is not None and hmac.compare_digest(given.encode(), self.csrf.encode())


class Sessions:
    def __init__(self, tokens: TokenStore, idle: float = IDLE_SECONDS,
                 lifetime: float = LIFETIME_SECONDS) -> None:
        self.tokens = tokens
        self.idle = idle
        self.lifetime = lifetime
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()

    def start(self, token: str) -> Session | None:
        """A new session for `token`, or None if no such token exists."""
        principal = self.tokens.principal(token)
        if principal is None:
            return None
        session = Session(secrets.token_urlsafe(32), token, principal)
        with self._lock:
            self._forget_expired()
            self._sessions[session.key] = session
        return session

    def get(self, key: str | None) -> Session | None:
        """The live session the cookie `key` names, its principal as its token says now."""
        if not key:
            return None
        with self._lock:
            self._forget_expired()
            session = self._sessions.get(key)
        if session is None:
            return None
        principal = self.tokens.principal(session.token)
        if principal is None:  # revoked since
            self.end(key)
            return None
        session.principal = principal
        session.last_used = time.monotonic()
        return session

    def end(self, key: str | None) -> None:
        with self._lock:
            self._sessions.pop(key or "", None)

    def _forget_expired(self) -> None:
        now = time.monotonic()
        for key, session in list(self._sessions.items()):
            if now - session.last_used > self.idle or now - session.started > self.lifetime:
                del self._sessions[key]
