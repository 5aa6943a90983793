"""`ServerClient`: requests to a CPS server, its problems turned back into CPSErrors."""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

import httpx

from ..errors import ERRORS_BY_CODE, AccessDenied, ServerError, UsageError

JOB_POLL_SECONDS = 0.2  # how often a job being waited for is asked about
TIMEOUT_SECONDS = 60.0  # a request's longest wait (a recovery point waits for the protector)
Progress = Callable[[str, int, int], None]

_NOT_CHANGED = "Nothing was changed."


def read_token(path: Path) -> str:
    """The token in the first line of `path` (as `cps server token create` printed it)."""
    lines = path.read_text().splitlines()
    token = lines[0].strip() if lines else ""
    if not token:
        raise UsageError(f"the token file {path} is empty",
                         hint="Put the token 'cps server token create' printed in its first line.")
    return token


class ServerClient:
    def __init__(self, url: str, token: str, *, timeout: float = TIMEOUT_SECONDS) -> None:
        if not url.startswith(("http://", "https://")):
            raise UsageError(f"not a server URL: {url}",
                             hint="Give the API's address, e.g. http://127.0.0.1:8470.")
        self.url = url.rstrip("/")
        # trust_env: a private CA can be named with SSL_CERT_FILE, as for other HTTPS clients.
        self._http = httpx.Client(base_url=self.url, timeout=timeout,
                                  headers={"Authorization": f"Bearer {token}"})

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ServerClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def get(self, path: str, **params: Any) -> Any:
        return self._send("GET", path, params={k: v for k, v in params.items() if v is not None})

    def post(self, path: str, body: dict[str, Any] | None = None) -> Any:
        return self._send("POST", path, json=body or {})

    def patch(self, path: str, body: dict[str, Any]) -> Any:
        return self._send("PATCH", path, json=body)

    def wait(self, job: dict[str, Any], progress: Progress) -> dict[str, Any]:
        """Follow `job` until it ends, reporting its progress; return its result, or raise the
        error it failed with. Interrupted (Ctrl-C), the wait cancels the job first."""
        try:
            while job["state"] in ("queued", "running"):
                step = job.get("progress") or {}
                if step:
                    progress(step["stage"], step["done"], step["total"])
                time.sleep(JOB_POLL_SECONDS)
                job = self.get(f"/api/v1/jobs/{job['id']}")
        except KeyboardInterrupt:
            self._send("DELETE", f"/api/v1/jobs/{job['id']}")
            raise
        if job["state"] == "done":
            return dict(job["result"] or {})
        error = job.get("error") or {}
        message = error.get("message") or f"job {job['id']} ended {job['state']}"
        raise ERRORS_BY_CODE.get(error.get("code", ""), ServerError)(message, hint=error.get("hint"))

    def download(self, path: str, file: Path, *, sha256: str | None = None) -> int:
        """Write what `path` serves to the new `file`, fsynced and checked against `sha256` when
        given, and return its size; on any failure `file` is removed. The caller moves it into
        place."""
        digest = hashlib.sha256()
        try:
            with self._stream(path) as chunks, file.open("xb") as out:
                for chunk in chunks:
                    out.write(chunk)
                    digest.update(chunk)
                out.flush()
                os.fsync(out.fileno())
            if sha256 is not None and digest.hexdigest() != sha256:
                raise ServerError(f"the download of {path} does not match its checksum",
                                  hint="Run the command again; nothing was written.")
            return file.stat().st_size
        except BaseException:
            file.unlink(missing_ok=True)
            raise

    def copy_to(self, path: str, out: BinaryIO, **params: Any) -> None:
        """Write what `path` serves to `out` as it arrives (a message's raw bytes)."""
        with self._stream(path, params) as chunks:
            for chunk in chunks:
                out.write(chunk)
        out.flush()

    @contextmanager
    def _stream(self, path: str, params: dict[str, Any] | None = None
                ) -> Iterator[Iterator[bytes]]:
        try:
            with self._http.stream("GET", path, params=params) as response:
                if response.is_error:
                    response.read()
                    _raise(response)
                yield response.iter_bytes(1 << 20)
        except httpx.HTTPError as error:
            raise self._unreachable(error) from None

    def _send(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as error:
            raise self._unreachable(error) from None
        if response.is_error:
            _raise(response)
        return response.json()

    def _unreachable(self, error: httpx.HTTPError) -> ServerError:
        return ServerError(f"cannot reach the CPS server at {self.url}: {error}",
                           hint="Check that 'cps server' runs and listens there (it prints where "
                                f"when ready) and that --server names it. {_NOT_CHANGED}")


def _raise(response: httpx.Response) -> None:
    """The CPSError a problem answer stands for: the same code's when CPS has it."""
    try:
        problem = response.json()
    except ValueError:
        problem = {}
    if not isinstance(problem, dict):
        problem = {}
    detail = str(problem.get("detail") or f"the server answered {response.status_code}")
    hint = problem.get("hint")
    known = ERRORS_BY_CODE.get(str(problem.get("code", "")))
    if known is not None:
        raise known(detail, hint=hint)
    status = response.status_code
    if status in (401, 403, 429):
        raise AccessDenied(detail, hint=hint or _access_hint(status))
    if 400 <= status < 500:
        raise UsageError(detail, hint=hint)
    raise ServerError(detail, hint=hint or "The server's log says why.")


def _access_hint(status: int) -> str:
    if status == 401:
        return ("Give a token the server knows with --token-file (made with 'cps server token "
                f"create'). {_NOT_CHANGED}")
    if status == 403:
        return f"Ask an administrator for a token with the role needed. {_NOT_CHANGED}"
    return f"Wait as the message says, then try again with a valid token. {_NOT_CHANGED}"

