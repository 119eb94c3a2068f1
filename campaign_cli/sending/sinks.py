"""Event sinks: drain the outbox to the webhook and the push gateway over HTTP.

The sender loop writes every body to POST into `outbox` in the same transaction as its events.
An `OutboxDrainer` sends them from its own threads, so a slow or dead endpoint never slows or
fails the sending. Delivery is at least once: a row is *claimed* before it is sent (its
`next_attempt_at` is pushed past the longest time the attempt can take, so a second drainer —
another `campaign run` — leaves it alone), outcomes are written in batches, and a row whose
outcome was lost (process killed, `stop` with requests still in flight) is sent again later.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import math
import queue
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import Connection, Engine, String, bindparam, func, select, update

from campaign_cli.errors import InvalidInput
from campaign_cli.settings import Settings, SinkSettings
from campaign_cli.store.bulk import chunked
from campaign_cli.store.engine import reading, writing
from campaign_cli.store.models import OUTBOX, UTCDateTime
from campaign_cli.timeutil import now

WEBHOOK, PUSH = "webhook", "push"
SINKS = (WEBHOOK, PUSH)
PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"
STATUSES = (PENDING, DELIVERED, FAILED)

BACKOFF_BASE = 0.5
BACKOFF_CAP = 60.0
MAX_RETRY_AFTER = 86_400.0
# Rows claimed per worker thread at most: bounds memory, and how long a claimed row may wait.
QUEUE_FACTOR = 8
CLAIM_MARGIN = 30.0
FLUSH_ROWS = 500
FLUSH_SECONDS = 0.5
POLL_SECONDS = 0.2
STOP_FLUSH_MARGIN = 0.2
RELEASE_CHUNK = 500

log = logging.getLogger(__name__)

_RECORD_OUTCOME = (
    update(OUTBOX)
    .where(OUTBOX.c.pk == bindparam("b_pk"), OUTBOX.c.status == PENDING)
    .values(
        status=bindparam("b_status"),
        attempts=bindparam("b_attempts"),
        next_attempt_at=bindparam("b_next", type_=UTCDateTime()),
        # A delivery keeps the error of the attempt before it: it tells why it was retried.
        last_error=func.coalesce(bindparam("b_error", type_=String()), OUTBOX.c.last_error),
    )
)


def full_jitter(ceiling: float) -> float:
    """A delay drawn uniformly from [0, ceiling] ("full jitter")."""
    return random.uniform(0.0, ceiling)


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with jitter: attempt n waits jitter(min(cap, base · 2^(n-1))), at least Retry-After."""

    base: float = BACKOFF_BASE
    cap: float = BACKOFF_CAP
    jitter: Callable[[float], float] = full_jitter

    def delay(self, attempts: int, retry_after: float | None = None) -> float:
        """Seconds to wait after `attempts` failed attempts."""
        ceiling = min(self.cap, self.base * 2.0 ** min(attempts - 1, 64))
        return max(self.jitter(ceiling), retry_after or 0.0)


def parse_retry_after(value: str | None, at: datetime) -> float | None:
    """The seconds a `Retry-After` header asks to wait (delta-seconds or an HTTP-date), or None."""
    if value is None:
        return None
    text = value.strip()
    if text.isdigit():
        return min(float(text), MAX_RETRY_AFTER)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return min(max((when - at).total_seconds(), 0.0), MAX_RETRY_AFTER)


def sign(secret: str, body: bytes) -> str:
    """The `X-Signature` of a body: hex HMAC-SHA256 keyed with the sink's secret."""
    return hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def describe_transport_error(exc: Exception) -> str:
    """A short `last_error` for a request that got no HTTP answer."""
    if isinstance(exc, httpx.TimeoutException):
        return "timeout"
    text = (str(exc).splitlines() or [""])[0]
    lowered = text.lower()
    if "refused" in lowered:
        return "connection refused"
    if "reset" in lowered or isinstance(exc, httpx.RemoteProtocolError):
        return "connection reset"
    return f"{type(exc).__name__}: {text}"[:200]


def outbox_stats(conn: Connection, campaign_id: str | None = None) -> dict[str, dict[str, int]]:
    """Outbox rows counted by sink and status, e.g. {"webhook": {"pending": 0, "delivered": 3, "failed": 1}, ...}."""
    stmt = select(OUTBOX.c.sink, OUTBOX.c.status, func.count()).group_by(OUTBOX.c.sink, OUTBOX.c.status)
    if campaign_id is not None:
        stmt = stmt.where(OUTBOX.c.campaign_id == campaign_id)
    stats = {sink: dict.fromkeys(STATUSES, 0) for sink in SINKS}
    for sink, status, count in conn.execute(stmt):
        stats.setdefault(sink, dict.fromkeys(STATUSES, 0))[status] = count
    return stats


@dataclass(frozen=True, eq=False)
class _Job:
    """One claimed outbox row on its way to a sink."""

    sink: str
    pk: int
    body: str
    attempts: int  # attempts made before this one


@dataclass(frozen=True)
class _Outcome:
    """What one attempt came to, ready to be written back."""

    job: _Job
    status: str
    next_attempt_at: datetime
    last_error: str | None

    def params(self) -> dict[str, Any]:
        return {
            "b_pk": self.job.pk,
            "b_status": self.status,
            "b_attempts": self.job.attempts + 1,
            "b_next": self.next_attempt_at,
            "b_error": self.last_error,
        }


class _Lane:
    """The worker threads and keep-alive HTTP client of one sink: at most `concurrency` requests in flight."""

    def __init__(self, sink: str, config: SinkSettings, backoff: Backoff, results: queue.SimpleQueue):
        self.sink = sink
        self.config = config
        self._backoff = backoff
        self._results = results
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        limits = httpx.Limits(max_connections=config.concurrency, max_keepalive_connections=config.concurrency)
        self._client = httpx.Client(timeout=config.timeout, limits=limits)
        self._workers = config.concurrency
        self._lock = threading.Lock()
        for number in range(config.concurrency):
            threading.Thread(target=self._work, name=f"outbox-{sink}-{number}", daemon=True).start()

    def submit(self, job: _Job) -> None:
        self._jobs.put(job)

    def take_queued(self) -> list[_Job]:
        """Remove and return the jobs no worker has started yet."""
        jobs = []
        while True:
            try:
                job = self._jobs.get_nowait()
            except queue.Empty:
                return jobs
            if job is not None:
                jobs.append(job)

    def close(self) -> None:
        """Let the workers exit once their request in hand is answered; the last one closes the client."""
        for _ in range(self.config.concurrency):
            self._jobs.put(None)

    def _work(self) -> None:
        while (job := self._jobs.get()) is not None:
            self._results.put(self._attempt(job))
        with self._lock:
            self._workers -= 1
            last = self._workers == 0
        if last:
            self._client.close()

    def _attempt(self, job: _Job) -> _Outcome:
        body = job.body.encode("utf-8")
        headers = {"Content-Type": "application/json"}
        if self.config.secret:
            headers["X-Signature"] = sign(self.config.secret, body)
        try:
            response = self._client.post(self.config.url, content=body, headers=headers)
        except httpx.TransportError as exc:
            return self._retry(job, describe_transport_error(exc))
        except Exception as exc:  # noqa: BLE001 - a worker thread must outlive anything one request does
            return self._retry(job, f"{type(exc).__name__}: {exc}"[:200])
        return self._judge(job, response)

    def _judge(self, job: _Job, response: httpx.Response) -> _Outcome:
        code = response.status_code
        if 200 <= code < 300:
            return _Outcome(job, DELIVERED, now(), None)
        if code == 429 or code >= 500:
            return self._retry(job, f"HTTP {code}", response.headers.get("Retry-After"))
        return _Outcome(job, FAILED, now(), f"HTTP {code}")

    def _retry(self, job: _Job, error: str, retry_after: str | None = None) -> _Outcome:
        at = now()
        attempts = job.attempts + 1
        if attempts >= self.config.max_attempts:
            return _Outcome(job, FAILED, at, error)
        delay = self._backoff.delay(attempts, parse_retry_after(retry_after, at))
        return _Outcome(job, PENDING, at + timedelta(seconds=delay), error)


class OutboxDrainer:
    """POSTs due outbox rows to the webhook and push URLs from background threads, recording outcomes in batches.

    Use `start()` / `stop(grace)` around a sender loop, `drain(until_idle, deadline)` to finish the outbox
    at the end of `campaign run`, or `drain_once()` for one pass. Rows of a sink without a URL are left
    alone. Nothing here raises into the caller after construction: problems go to `on_error` (default:
    the `campaign_cli.sending.sinks` logger) and the drainer goes on. One caller thread drives it.
    """

    def __init__(
        self,
        engine: Engine,
        settings: Settings,
        *,
        backoff_base: float = BACKOFF_BASE,
        backoff_cap: float = BACKOFF_CAP,
        jitter: Callable[[float], float] = full_jitter,
        on_error: Callable[[str], None] | None = None,
    ):
        self._engine = engine
        self._sinks = {sink: config for sink, config in ((WEBHOOK, settings.webhook), (PUSH, settings.push))
                       if config.url}
        for sink, config in self._sinks.items():
            _check_sink(sink, config, settings.config_path)
        self._backoff = Backoff(backoff_base, backoff_cap, jitter)
        self._on_error = on_error or log.warning
        self._results: queue.SimpleQueue[_Outcome | None] = queue.SimpleQueue()
        self._lanes: dict[str, _Lane] = {}
        self._inflight: dict[str, dict[int, _Job]] = {sink: {} for sink in self._sinks}
        self._outcomes: list[_Outcome] = []
        self._oldest_outcome = 0.0
        self._released: list[int] = []
        self._finished = 0
        self._last_problem: str | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._handover = False
        self._stop_deadline = 0.0

    # -- the public face -------------------------------------------------------------------------

    def start(self) -> None:
        """Keep draining in a background thread until `stop` (or `drain`) is called."""
        if not self._sinks or (self._thread is not None and not self._stopping.is_set()):
            return
        self._take_over()
        self._stopping.clear()
        self._handover = False
        self._thread = threading.Thread(target=self._run, name="outbox-drainer", daemon=True)
        self._thread.start()

    def stop(self, grace: float = 5.0) -> None:
        """Stop within `grace` seconds, delivering what is due meanwhile; what is unanswered then stays pending."""
        deadline = time.monotonic() + max(grace, 0.0)
        thread = self._thread
        if thread is None or not thread.is_alive():
            self._thread = None
            self._finish(deadline)
            return
        self._stop_deadline = deadline - min(STOP_FLUSH_MARGIN, max(grace, 0.0) / 4)
        self._handover = False
        self._stopping.set()
        self._results.put(None)
        thread.join(timeout=max(deadline - time.monotonic(), 0.0))

    def drain_once(self) -> int:
        """One pass over the rows due now, waiting for their answers; returns the rows delivered or failed."""
        self._take_over()
        finished = self._finished
        self._pass(math.inf)
        return self._finished - finished

    def drain(self, until_idle: bool, deadline: float) -> int:
        """Deliver due rows until `deadline` (a `time.monotonic()` instant); returns the rows delivered or failed.

        With `until_idle`, also wait for retries that come due, until no row of a configured sink is pending.
        What is unanswered at the deadline stays pending for the next run. Stops the background thread.
        """
        self._take_over()
        finished = self._finished
        while True:
            self._pass(deadline)
            if not until_idle or time.monotonic() >= deadline:
                break
            wait = self._guard(self._seconds_to_next_due)
            if wait is None:
                break
            time.sleep(max(min(wait, deadline - time.monotonic()), 0.0))
        self._finish(deadline)
        return self._finished - finished

    # -- driving loops ---------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._guard(self._exchange, None)
            self._collect(POLL_SECONDS)
        if not self._handover:
            self._pass(self._stop_deadline)
            self._finish(self._stop_deadline)

    def _take_over(self) -> None:
        """Bring the background thread to a halt, keeping its requests in flight, so this thread drives."""
        thread = self._thread
        if thread is not None and thread.is_alive():
            if not self._stopping.is_set():
                self._handover = True
                self._stopping.set()
                self._results.put(None)
            thread.join()
        self._thread = None

    def _pass(self, deadline: float) -> None:
        """Send every row due now (and not already in flight), until all are answered or `deadline`."""
        due_by = now()
        while time.monotonic() < deadline:
            more = self._guard(self._exchange, due_by)
            if not more and not self._in_flight():
                break
            self._collect(min(POLL_SECONDS, deadline - time.monotonic()))
        self._guard(self._flush)

    def _finish(self, deadline: float) -> None:
        """Wait for answers until `deadline`, give back the claims of the rest, write everything, close the lanes."""
        for lane in self._lanes.values():
            for job in lane.take_queued():
                self._release(job)
        while self._in_flight() and (remaining := deadline - time.monotonic()) > 0:
            self._collect(min(POLL_SECONDS, remaining))
        for jobs in self._inflight.values():
            for job in list(jobs.values()):
                self._release(job)
        self._guard(self._flush)
        for lane in self._lanes.values():
            lane.close()
        self._lanes.clear()

    # -- one step --------------------------------------------------------------------------------

    def _exchange(self, due_by: datetime | None) -> bool:
        """Write finished outcomes and claim more due rows; returns whether more due rows may be waiting."""
        wanted = {sink: self._room(sink) for sink in self._sinks}
        with reading(self._engine) as conn:
            at = due_by or now()
            candidates = {sink: self._due_rows(conn, sink, room, at) for sink, room in wanted.items() if room}
        if any(candidates.values()) or self._flush_due():
            self._dispatch(self._write(candidates))
        return any(room == 0 or len(candidates[sink]) == room for sink, room in wanted.items())

    def _room(self, sink: str) -> int:
        """How many rows to claim for a sink now: none until its queue is at most half full."""
        capacity = self._sinks[sink].concurrency * QUEUE_FACTOR
        room = capacity - len(self._inflight[sink])
        return room if room * 2 >= capacity else 0

    @staticmethod
    def _due_rows(conn: Connection, sink: str, limit: int, due_by: datetime) -> Sequence[Any]:
        return conn.execute(
            select(OUTBOX.c.pk, OUTBOX.c.body, OUTBOX.c.attempts)
            .where(OUTBOX.c.sink == sink, OUTBOX.c.status == PENDING, OUTBOX.c.next_attempt_at <= due_by)
            .order_by(OUTBOX.c.next_attempt_at, OUTBOX.c.pk)
            .limit(limit)
        ).all()

    def _write(self, candidates: dict[str, Sequence[Any]]) -> list[_Job]:
        """In one write transaction: record outcomes, give back released claims, claim the candidates."""
        with writing(self._engine) as conn:
            self._record(conn)
            claimed = [job for sink, rows in candidates.items() if rows for job in self._claim(conn, sink, rows)]
        self._recorded()
        return claimed

    def _claim(self, conn: Connection, sink: str, rows: Sequence[Any]) -> list[_Job]:
        """Push the rows' next attempt past the time they may take; keep those no other drainer claimed first."""
        at = now()
        # A claimed row waits behind at most QUEUE_FACTOR requests per worker, each bounded by the timeout.
        until = at + timedelta(seconds=QUEUE_FACTOR * self._sinks[sink].timeout + CLAIM_MARGIN)
        won = set(conn.execute(
            update(OUTBOX)
            .where(OUTBOX.c.pk.in_([row.pk for row in rows]), OUTBOX.c.status == PENDING,
                   OUTBOX.c.next_attempt_at <= at)
            .values(next_attempt_at=until)
            .returning(OUTBOX.c.pk)
        ).scalars())
        return [_Job(sink, row.pk, row.body, row.attempts) for row in rows if row.pk in won]

    def _dispatch(self, jobs: list[_Job]) -> None:
        for job in jobs:
            self._inflight[job.sink][job.pk] = job
            self._lane(job.sink).submit(job)

    def _lane(self, sink: str) -> _Lane:
        if sink not in self._lanes:
            self._lanes[sink] = _Lane(sink, self._sinks[sink], self._backoff, self._results)
        return self._lanes[sink]

    def _collect(self, wait: float) -> None:
        """Take the outcomes the workers produced, waiting up to `wait` seconds for the first one."""
        try:
            item = self._results.get(timeout=max(wait, 0.0))
        except queue.Empty:
            return
        while True:
            if item is not None:
                self._accept(item)
            try:
                item = self._results.get_nowait()
            except queue.Empty:
                return

    def _accept(self, outcome: _Outcome) -> None:
        jobs = self._inflight[outcome.job.sink]
        if jobs.get(outcome.job.pk) is not outcome.job:
            return  # a late answer to a request given up on: its row was released for another attempt
        del jobs[outcome.job.pk]
        if not self._outcomes:
            self._oldest_outcome = time.monotonic()
        self._outcomes.append(outcome)

    def _release(self, job: _Job) -> None:
        self._inflight[job.sink].pop(job.pk, None)
        self._released.append(job.pk)

    def _in_flight(self) -> bool:
        return any(self._inflight.values())

    # -- writing outcomes ------------------------------------------------------------------------

    def _flush_due(self) -> bool:
        if self._released:
            return True
        return bool(self._outcomes) and (
            len(self._outcomes) >= FLUSH_ROWS or time.monotonic() - self._oldest_outcome >= FLUSH_SECONDS
        )

    def _flush(self) -> None:
        if self._outcomes or self._released:
            self._write({})

    def _record(self, conn: Connection) -> None:
        if self._outcomes:
            conn.execute(_RECORD_OUTCOME, [outcome.params() for outcome in self._outcomes])
        at = now()
        for pks in chunked(self._released, RELEASE_CHUNK):
            conn.execute(
                update(OUTBOX).where(OUTBOX.c.pk.in_(pks), OUTBOX.c.status == PENDING).values(next_attempt_at=at)
            )

    def _recorded(self) -> None:
        self._finished += sum(outcome.status != PENDING for outcome in self._outcomes)
        self._outcomes.clear()
        self._released.clear()

    def _seconds_to_next_due(self) -> float | None:
        """Seconds until the earliest pending row of a configured sink is due; None when none is pending."""
        with reading(self._engine) as conn:
            first = conn.scalar(
                select(func.min(OUTBOX.c.next_attempt_at))
                .where(OUTBOX.c.sink.in_(list(self._sinks)), OUTBOX.c.status == PENDING)
            )
        return None if first is None else max((first - now()).total_seconds(), 0.0)

    # -- problems --------------------------------------------------------------------------------

    def _guard(self, step: Callable[..., Any], *args: Any) -> Any:
        """Run one step; a failure is reported (once while it lasts) and the drainer goes on."""
        try:
            result = step(*args)
        except Exception as exc:  # noqa: BLE001 - the drainer must never raise into the sender
            self._report(exc)
            return None
        self._last_problem = None
        return result

    def _report(self, exc: Exception) -> None:
        cause = getattr(exc, "orig", None) or exc
        message = f"outbox drainer: {(str(cause).splitlines() or [type(cause).__name__])[0]}"
        if message == self._last_problem:
            return
        self._last_problem = message
        try:
            self._on_error(message)
        except Exception:  # noqa: BLE001 - a broken error callback must not stop the deliveries
            log.exception("outbox drainer: on_error failed")


def _check_sink(sink: str, config: SinkSettings, config_path: Path | None) -> None:
    """A sink with a URL must have an http(s) URL and positive limits; the message names the config key."""
    where = f"{config_path}: " if config_path else ""
    try:
        url = httpx.URL(config.url or "")
    except httpx.InvalidURL:
        url = None
    if url is None or url.scheme not in ("http", "https") or not url.host:
        raise InvalidInput(f"{where}{sink}.url is not an http(s) URL: {config.url!r}")
    for key in ("timeout", "max_attempts", "concurrency"):
        value = getattr(config, key)
        if not value > 0:
            raise InvalidInput(f"{where}{sink}.{key} must be greater than 0, got {value!r}")
