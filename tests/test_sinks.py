"""The outbox drainer against real HTTP receivers on 127.0.0.1: signatures, retries, backoff, limits, stop."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from pathlib import Path

import pytest
from http_receiver import Receiver, free_port
from sqlalchemy import Engine, insert, select, text

from campaign_cli.errors import InvalidInput
from campaign_cli.sending.sinks import OutboxDrainer, outbox_stats, parse_retry_after
from campaign_cli.settings import Settings, SinkSettings
from campaign_cli.store.engine import open_engine, reading, writing
from campaign_cli.store.models import OUTBOX
from campaign_cli.timeutil import now

SECRET = "s3cret"
QUICK = {"backoff_base": 0.01, "backoff_cap": 0.05}


@pytest.fixture
def engine(db_url: str) -> Engine:
    engine = open_engine(db_url)
    yield engine
    engine.dispose()


@pytest.fixture
def drainers(engine: Engine):
    made: list[OutboxDrainer] = []

    def make(webhook: SinkSettings = SinkSettings(), push: SinkSettings = SinkSettings(), **options) -> OutboxDrainer:
        settings = Settings(db_url=str(engine.url), webhook=webhook, push=push)
        made.append(OutboxDrainer(engine, settings, **options))
        return made[-1]

    yield make
    for drainer in made:
        drainer.stop(0)


def hook(url: str, **overrides) -> SinkSettings:
    return SinkSettings(**{"url": url, "secret": SECRET, "timeout": 2.0, "max_attempts": 4, "concurrency": 2,
                           **overrides})


def add(engine: Engine, count: int = 1, sink: str = "webhook", campaign_id: str = "c1", **columns) -> list[int]:
    """Insert outbox rows as the sender does, due now; returns their keys."""
    at = now()
    rows = [{"sink": sink, "event_type": "message.new", "campaign_id": campaign_id,
             "body": json.dumps({"type": "message.new", "n": n, "text": "héllo"}), "status": "pending",
             "attempts": 0, "next_attempt_at": at, "created_at": at, **columns} for n in range(count)]
    with writing(engine) as conn:
        return [conn.execute(insert(OUTBOX).values(row).returning(OUTBOX.c.pk)).scalar_one() for row in rows]


def rows(engine: Engine) -> list[dict]:
    with reading(engine) as conn:
        return [dict(row._mapping) for row in conn.execute(select(OUTBOX).order_by(OUTBOX.c.pk))]


def states(engine: Engine) -> list[tuple[str, int, str | None]]:
    return [(row["status"], row["attempts"], row["last_error"]) for row in rows(engine)]


def drain_all(drainer: OutboxDrainer, seconds: float = 10.0) -> int:
    return drainer.drain(until_idle=True, deadline=time.monotonic() + seconds)


def gaps(receiver: Receiver) -> list[float]:
    times = [request.at for request in receiver.requests]
    return [later - earlier for earlier, later in zip(times, times[1:])]


def test_delivers_signed_bodies_over_one_kept_alive_connection(engine, receivers, drainers):
    receiver = receivers(secret=SECRET)
    add(engine, 3)
    drainer = drainers(webhook=hook(receiver.url, concurrency=1))

    assert drainer.drain_once() == 3

    assert [request.body for request in receiver.requests] == [row["body"].encode("utf-8") for row in rows(engine)]
    assert [request.signature_ok for request in receiver.requests] == [True, True, True]
    expected = hmac.new(SECRET.encode(), receiver.requests[0].body, hashlib.sha256).hexdigest()
    assert receiver.requests[0].headers["x-signature"] == expected
    assert {request.headers["content-type"] for request in receiver.requests} == {"application/json"}
    assert len({request.client_port for request in receiver.requests}) == 1
    assert states(engine) == [("delivered", 1, None)] * 3


def test_wrong_secret_is_refused_and_fails_at_once(engine, receivers, drainers):
    receiver = receivers(secret=SECRET)
    add(engine)
    drainer = drainers(webhook=hook(receiver.url, secret="not-the-secret"))

    assert drainer.drain_once() == 1

    assert [request.signature_ok for request in receiver.requests] == [False]
    assert states(engine) == [("failed", 1, "HTTP 401")]


def test_server_error_forever_fails_after_max_attempts_with_exponential_backoff(engine, receivers, drainers):
    receiver = receivers(secret=SECRET)
    receiver.fail_forever(500)
    add(engine)
    drainer = drainers(webhook=hook(receiver.url, max_attempts=4), backoff_base=0.1, backoff_cap=10.0,
                       jitter=lambda ceiling: ceiling)

    assert drain_all(drainer) == 1

    assert states(engine) == [("failed", 4, "HTTP 500")]
    assert len(receiver.requests) == 4
    for gap, expected in zip(gaps(receiver), [0.1, 0.2, 0.4]):
        assert expected <= gap < expected + 0.25


def test_backoff_is_full_jitter_below_the_cap(engine, receivers, drainers):
    receiver = receivers(secret=SECRET)
    receiver.fail_forever(503)
    add(engine, 20, attempts=0)
    add(engine, 1, attempts=20)
    drainer = drainers(webhook=hook(receiver.url, max_attempts=30), backoff_base=4.0, backoff_cap=7.0)

    before = now()
    assert drainer.drain_once() == 0
    after = now()

    *first, late = rows(engine)
    assert {(row["status"], row["attempts"]) for row in first} == {("pending", 1)}
    assert (late["status"], late["attempts"]) == ("pending", 21)
    waits = [row["next_attempt_at"] for row in first]
    assert before <= min(waits) and max(waits) <= after + timedelta(seconds=4.0)
    assert max(waits) - min(waits) > timedelta(seconds=1.0)
    assert before <= late["next_attempt_at"] <= after + timedelta(seconds=7.0)


def test_rate_limited_retry_waits_for_retry_after(engine, receivers, drainers):
    receiver = receivers(secret=SECRET)
    receiver.rate_limit("2")
    add(engine)
    drainer = drainers(webhook=hook(receiver.url), **QUICK)

    assert drain_all(drainer) == 1

    assert states(engine) == [("delivered", 2, "HTTP 429")]
    assert len(receiver.requests) == 2
    assert gaps(receiver)[0] >= 2.0


def test_retry_after_takes_seconds_or_an_http_date():
    at = datetime(2026, 3, 1, 12, 0, 0, tzinfo=timezone.utc)
    assert parse_retry_after("2", at) == 2.0
    assert parse_retry_after(format_datetime(at + timedelta(seconds=90), usegmt=True), at) == 90.0
    assert parse_retry_after(format_datetime(at - timedelta(seconds=90), usegmt=True), at) == 0.0
    assert parse_retry_after("soon", at) is None
    assert parse_retry_after(None, at) is None


def test_hanging_receiver_times_out_and_is_retried(engine, receivers, drainers):
    receiver = receivers(secret=SECRET)
    receiver.hang(5.0, times=1)
    add(engine)
    drainer = drainers(webhook=hook(receiver.url, timeout=0.3), **QUICK)

    started = time.monotonic()
    assert drain_all(drainer) == 1

    assert time.monotonic() - started < 2.0
    assert states(engine) == [("delivered", 2, "timeout")]
    assert len(receiver.requests) == 2


def test_refused_connection_is_retried_then_failed(engine, drainers):
    add(engine)
    drainer = drainers(webhook=hook(f"http://127.0.0.1:{free_port()}/hook", max_attempts=3), **QUICK)

    assert drain_all(drainer) == 1

    assert states(engine) == [("failed", 3, "connection refused")]


def test_client_error_fails_at_once(engine, receivers, drainers):
    receiver = receivers(secret=SECRET)
    receiver.fail_forever(404)
    add(engine)
    drainer = drainers(webhook=hook(receiver.url), **QUICK)

    assert drain_all(drainer) == 1

    assert states(engine) == [("failed", 1, "HTTP 404")]
    assert len(receiver.requests) == 1


def test_success_after_two_failures(engine, receivers, drainers):
    receiver = receivers(secret=SECRET)
    receiver.fail_first(2, status=502)
    add(engine)
    drainer = drainers(webhook=hook(receiver.url), **QUICK)

    assert drain_all(drainer) == 1

    assert states(engine) == [("delivered", 3, "HTTP 502")]
    assert len(receiver.requests) == 3


def test_concurrency_is_bounded(engine, receivers, drainers):
    receiver = receivers(secret=SECRET)
    receiver.hang(0.15)
    add(engine, 12)
    drainer = drainers(webhook=hook(receiver.url, concurrency=3))

    assert drainer.drain_once() == 12

    assert receiver.max_in_flight == 3
    assert states(engine) == [("delivered", 1, None)] * 12


def test_rows_not_yet_due_wait(engine, receivers, drainers):
    receiver = receivers(secret=SECRET)
    add(engine, next_attempt_at=now() + timedelta(minutes=5))
    drainer = drainers(webhook=hook(receiver.url))

    assert drainer.drain_once() == 0

    assert receiver.requests == []
    assert states(engine) == [("pending", 0, None)]


def test_push_rows_go_to_the_push_url_unsigned(engine, receivers, drainers):
    webhook, push = receivers(secret=SECRET), receivers()
    add(engine, 2, sink="webhook")
    add(engine, 3, sink="push")
    drainer = drainers(webhook=hook(webhook.url), push=SinkSettings(url=push.url, concurrency=2))

    assert drainer.drain_once() == 5

    assert len(webhook.requests) == 2
    assert len(push.requests) == 3
    assert ["x-signature" in request.headers for request in push.requests] == [False] * 3
    assert {request.headers["content-type"] for request in push.requests} == {"application/json"}


def test_rows_of_a_sink_without_url_are_left_alone(engine, receivers, drainers):
    receiver = receivers(secret=SECRET)
    add(engine, 1, sink="webhook")
    add(engine, 2, sink="push")
    drainer = drainers(webhook=hook(receiver.url))

    assert drain_all(drainer, 2.0) == 1

    assert states(engine) == [("delivered", 1, None), ("pending", 0, None), ("pending", 0, None)]


def test_background_thread_delivers_rows_the_sender_adds_later(engine, receivers, drainers):
    receiver = receivers(secret=SECRET)
    drainer = drainers(webhook=hook(receiver.url))
    drainer.start()

    add(engine, 5)
    assert receiver.wait_for(5)
    drainer.stop(2.0)

    assert states(engine) == [("delivered", 1, None)] * 5


def test_hanging_endpoint_never_slows_the_sender_and_stop_keeps_its_grace(engine, receivers, drainers):
    receiver = receivers(secret=SECRET)
    receiver.hang(30.0)
    drainer = drainers(webhook=hook(receiver.url, timeout=10.0, concurrency=2))
    drainer.start()
    add(engine, 4)
    assert receiver.wait_for(2)

    slowest = 0.0
    for _ in range(10):
        started = time.monotonic()
        add(engine)
        slowest = max(slowest, time.monotonic() - started)
    started = time.monotonic()
    drainer.stop(0.5)
    stopped_in = time.monotonic() - started

    assert slowest < 0.2
    assert stopped_in < 0.6
    assert {(row["status"], row["attempts"]) for row in rows(engine)} == {("pending", 0)}
    assert max(row["next_attempt_at"] for row in rows(engine)) <= now()


def test_stop_delivers_what_is_due_within_grace(engine, receivers, drainers):
    receiver = receivers(secret=SECRET)
    receiver.hang(0.3)
    drainer = drainers(webhook=hook(receiver.url, concurrency=2))
    drainer.start()
    add(engine, 2)
    assert receiver.wait_for(2)
    add(engine, 3)

    drainer.stop(2.0)

    assert states(engine) == [("delivered", 1, None)] * 5


def test_drain_takes_over_the_requests_in_flight_of_the_background_thread(engine, receivers, drainers):
    receiver = receivers(secret=SECRET)
    receiver.hang(0.3)
    # A generous timeout: on a loaded machine a 2 s timeout can expire and the (at-least-once) retry
    # would add a request that says nothing about the hand-over this test is about.
    drainer = drainers(webhook=hook(receiver.url, concurrency=2, timeout=10.0))
    add(engine, 2)
    drainer.start()
    assert receiver.wait_for(2)

    assert drain_all(drainer) == 2

    assert len(receiver.requests) == 2
    assert states(engine) == [("delivered", 1, None)] * 2


def test_database_problem_is_reported_once_and_draining_goes_on(engine, receivers, drainers):
    receiver = receivers(secret=SECRET)
    problems: list[str] = []
    drainer = drainers(webhook=hook(receiver.url), on_error=problems.append)
    with writing(engine) as conn:
        conn.execute(text("ALTER TABLE outbox RENAME TO outbox_away"))
    drainer.start()
    deadline = time.monotonic() + 5.0
    while not problems and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)  # several more passes meet the same problem
    with writing(engine) as conn:
        conn.execute(text("ALTER TABLE outbox_away RENAME TO outbox"))

    add(engine, 2)
    assert receiver.wait_for(2)
    drainer.stop(2.0)

    missing = {"sqlite": "no such table: outbox", "postgresql": 'relation "outbox" does not exist'}
    assert problems == [f"outbox drainer: {missing[engine.dialect.name]}"]
    assert states(engine) == [("delivered", 1, None)] * 2


def test_outbox_stats_count_by_sink_and_status(engine, receivers, drainers):
    receiver = receivers(secret=SECRET)
    receiver.fail_first(1, status=400)
    add(engine, 1, campaign_id="c1")
    add(engine, 2, campaign_id="c1")
    add(engine, 1, sink="push", campaign_id="c2")
    drainer = drainers(webhook=hook(receiver.url, concurrency=1))
    drainer.drain_once()

    with reading(engine) as conn:
        assert outbox_stats(conn) == {"webhook": {"pending": 0, "delivered": 2, "failed": 1},
                                      "push": {"pending": 1, "delivered": 0, "failed": 0}}
        assert outbox_stats(conn, "c2") == {"webhook": {"pending": 0, "delivered": 0, "failed": 0},
                                            "push": {"pending": 1, "delivered": 0, "failed": 0}}


@pytest.mark.parametrize(("sink", "expected"), [
    (hook("ftp://example.com/x"), "webhook.url is not an http(s) URL: 'ftp://example.com/x'"),
    (hook("http:///nohost"), "webhook.url is not an http(s) URL: 'http:///nohost'"),
    (hook("http://127.0.0.1/x", concurrency=0), "webhook.concurrency must be greater than 0, got 0"),
])
def test_bad_sink_settings_are_invalid_input(engine, sink, expected):
    with pytest.raises(InvalidInput) as raised:
        OutboxDrainer(engine, Settings(db_url=str(engine.url), config_path=Path("conf.yaml"), webhook=sink))
    assert str(raised.value) == f"conf.yaml: {expected}"
