"""A real HTTP receiver on 127.0.0.1 for tests: records requests, checks X-Signature, injects failures.

Replies follow a plan: the first requests get the replies given to `plan` in turn, every later one
gets `then`. A reply's `delay` makes the handler wait before answering — longer than the client's
timeout, that is a hang; `release()` ends every wait at once. A receiver with a secret answers 401
to a request whose X-Signature is not the hex HMAC-SHA256 of its body. `free_port()` is a port
where nothing listens: connecting to it is refused.
"""

from __future__ import annotations

import hashlib
import hmac
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass(frozen=True)
class Reply:
    """How to answer one request."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


@dataclass(frozen=True)
class Received:
    """One request as it arrived."""

    path: str
    headers: dict[str, str]  # names in lower case
    body: bytes
    at: float  # time.monotonic() on arrival
    client_port: int  # the client's port: one per connection, so keep-alive shows as one port
    signature_ok: bool | None  # None when the receiver has no secret


class Receiver:
    """A threaded HTTP server on 127.0.0.1 answering POSTs according to a plan."""

    def __init__(self, secret: str | None = None):
        self.secret = secret
        self.requests: list[Received] = []
        self.max_in_flight = 0
        self._in_flight = 0
        self._lock = threading.Condition()
        self._plan: list[Reply] = []
        self._then = Reply()
        self._released = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/hook"

    def plan(self, *first: Reply, then: Reply = Reply()) -> None:
        """Answer the next requests with `first`, in order, and every one after with `then`."""
        with self._lock:
            self._plan = list(first)
            self._then = then

    def fail_forever(self, status: int = 500) -> None:
        self.plan(then=Reply(status))

    def fail_first(self, times: int, status: int = 500) -> None:
        self.plan(*[Reply(status)] * times)

    def rate_limit(self, retry_after: str, times: int = 1) -> None:
        self.plan(*[Reply(429, {"Retry-After": retry_after})] * times)

    def hang(self, seconds: float, times: int | None = None) -> None:
        """Wait `seconds` before answering 200: the first `times` requests, or all of them."""
        if times is None:
            self.plan(then=Reply(delay=seconds))
        else:
            self.plan(*[Reply(delay=seconds)] * times)

    def release(self) -> None:
        """End every wait now, and let later requests through without waiting."""
        self._released.set()

    def wait_for(self, count: int, timeout: float = 5.0) -> bool:
        """Wait until `count` requests have arrived."""
        with self._lock:
            return self._lock.wait_for(lambda: len(self.requests) >= count, timeout)

    def close(self) -> None:
        self.release()
        self._server.shutdown()
        self._server.server_close()

    def _serve(self, handler: BaseHTTPRequestHandler) -> None:
        body = handler.rfile.read(int(handler.headers.get("Content-Length") or 0))
        signature_ok = self._signature_ok(handler.headers.get("X-Signature"), body)
        with self._lock:
            self.requests.append(Received(
                path=handler.path,
                headers={name.lower(): value for name, value in handler.headers.items()},
                body=body,
                at=time.monotonic(),
                client_port=handler.client_address[1],
                signature_ok=signature_ok,
            ))
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)
            reply = self._plan.pop(0) if self._plan else self._then
            self._lock.notify_all()
        if reply.delay:
            self._released.wait(reply.delay)
        with self._lock:
            self._in_flight -= 1
        _answer(handler, 401 if signature_ok is False else reply.status, reply.headers)

    def _signature_ok(self, signature: str | None, body: bytes) -> bool | None:
        if self.secret is None:
            return None
        expected = hmac.new(self.secret.encode(), body, hashlib.sha256).hexdigest()
        return signature is not None and hmac.compare_digest(signature, expected)


def _handler_for(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive

        def do_POST(self) -> None:  # noqa: N802 - the name http.server looks for
            receiver._serve(self)

        def log_message(self, format: str, *args: object) -> None:
            """Quiet: tests read `requests` instead."""

    return Handler


def _answer(handler: BaseHTTPRequestHandler, status: int, headers: dict[str, str]) -> None:
    try:
        handler.send_response(status)
        for name, value in headers.items():
            handler.send_header(name, value)
        handler.send_header("Content-Length", "0")
        handler.end_headers()
    except OSError:
        handler.close_connection = True  # the client gave up (timeout) and closed the connection


def free_port() -> int:
    """A port on 127.0.0.1 where nothing listens."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
