"""A small client of the Matrix client-server API: retries, backoff, and one shared pause on 429.

Every request of one backend goes through one `MatrixHttp`, whose connection pool holds
`concurrency` connections. When the homeserver answers `M_LIMIT_EXCEEDED`, every worker waits
for its `retry_after_ms` before its next request, not just the one that was refused. Connection
errors and 5xx answers are retried with exponential backoff; after `max_attempts` the homeserver
is declared unreachable (`HomeserverUnavailable`, exit code 1).
"""

from __future__ import annotations

import threading
import time
from typing import Any
from urllib.parse import quote

import httpx

from campaign_cli.errors import CampaignError, InvalidInput

API = "/_matrix/client/v3"
MAX_BACKOFF = 8.0
# A 429 storm is waited out, but not forever.
MAX_RATE_LIMITED = 100
TOKEN_ERRORS = ("M_UNKNOWN_TOKEN", "M_MISSING_TOKEN")


class HomeserverUnavailable(CampaignError):
    """The homeserver did not answer (or answered 5xx) after every retry: the campaign stays resumable."""

    exit_code = 1


class MatrixError(Exception):
    """The homeserver refused a request (4xx): `errcode` is the Matrix error code, e.g. M_FORBIDDEN."""

    def __init__(self, status: int, errcode: str, message: str):
        super().__init__(f"{errcode}: {message}")
        self.status, self.errcode, self.message = status, errcode, message

    @property
    def reason(self) -> str:
        """The target's failure reason: `matrix:M_FORBIDDEN: <the server's words>`."""
        return f"matrix:{self.errcode}: {self.message}"


def path_part(value: str) -> str:
    """A room id, alias or user id as one path segment."""
    return quote(value, safe="")


class MatrixHttp:
    """Authenticated requests to one homeserver, safe to share between threads."""

    def __init__(self, homeserver: str, token: str, *, concurrency: int, timeout: float, max_attempts: int):
        self.homeserver = homeserver.rstrip("/")
        self.max_attempts = max_attempts
        self.client = httpx.Client(
            base_url=self.homeserver, timeout=timeout, headers={"Authorization": f"Bearer {token}"},
            limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency))
        self._lock = threading.Lock()
        self._paused_until = 0.0

    def close(self) -> None:
        self.client.close()

    def call(self, method: str, path: str, *, json: Any = None, params: dict | None = None, api: str = API) -> Any:
        """One request; returns the decoded JSON answer, raises MatrixError on 4xx."""
        attempts = limited = 0
        while True:
            self._wait_for_pause()
            try:
                reply = self.client.request(method, api + path, json=json, params=params)
            except httpx.TransportError as exc:
                failure = f"{type(exc).__name__}: {exc}".rstrip(": ")
            else:
                if reply.status_code == 429:
                    limited += 1
                    if limited > MAX_RATE_LIMITED:
                        raise HomeserverUnavailable(f"homeserver {self.homeserver} kept answering 429 "
                                                    f"({limited} times for one request)")
                    self.pause(_retry_after(reply))
                    continue
                if reply.status_code < 500:
                    return self._decode(reply)
                failure = f"HTTP {reply.status_code}"
            attempts += 1
            if attempts >= self.max_attempts:
                raise HomeserverUnavailable(f"homeserver {self.homeserver} unreachable after {attempts} attempts "
                                            f"({failure}); `campaign run` resumes the campaign")
            time.sleep(min(0.25 * 2 ** (attempts - 1), MAX_BACKOFF))

    def pause(self, seconds: float) -> None:
        """Hold every request of this client for `seconds` (the homeserver's `retry_after_ms`)."""
        with self._lock:
            self._paused_until = max(self._paused_until, time.monotonic() + seconds)

    def _wait_for_pause(self) -> None:
        while (left := self._paused_until - time.monotonic()) > 0:
            time.sleep(left)

    def _decode(self, reply: httpx.Response) -> Any:
        try:
            data = reply.json()
        except ValueError:
            data = {}
        if reply.status_code < 400:
            return data
        errcode = (data.get("errcode") if isinstance(data, dict) else None) or f"HTTP_{reply.status_code}"
        message = (data.get("error") if isinstance(data, dict) else None) or reply.reason_phrase
        if errcode in TOKEN_ERRORS:
            raise InvalidInput(f"delivery.matrix.access_token: the homeserver {self.homeserver} rejected it "
                               f"({errcode}: {message})")
        raise MatrixError(reply.status_code, errcode, message)


def _retry_after(reply: httpx.Response) -> float:
    try:
        millis = reply.json().get("retry_after_ms")
    except (ValueError, AttributeError):
        millis = None
    if isinstance(millis, (int, float)) and millis >= 0:
        return millis / 1000
    header = reply.headers.get("Retry-After", "")
    return float(header) if header.isdigit() else 1.0
