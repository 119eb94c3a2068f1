"""The sender loop: claim a batch, plan and render it, write it; until the campaign is done, stopped or interrupted.

Each batch is written in one short transaction (see batch.py) that also marks its claim done
(see claims.py), so a crash loses at most the batch in hand, which another sender (or the next
one) redoes once the claim's lease runs out: nothing is lost and nothing is sent twice.
Rendering happens before that transaction, so no template holds the database's write lock.

With a remote backend (see campaign_cli/delivery) a batch has one more short transaction and no
transaction is open while waiting on the network: mark the claimed targets `sending`, plan and
deliver, write the results; a crash in between leaves them `sending`, and the sender that takes
the claim over delivers them again under the same idempotency keys.
"""

from __future__ import annotations

import gc
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, or_, select, update
from sqlalchemy.exc import InterfaceError, OperationalError, SQLAlchemyError

from campaign_cli import lifecycle
from campaign_cli.errors import CampaignError
from campaign_cli.delivery import Backend, open_backend
from campaign_cli.sending import claims
from campaign_cli.sending.batch import PENDING, SENDING, TARGETS, BatchResult, CampaignRun, Delivery, plan_batch, write_batch
from campaign_cli.sending.claims import Claim, ClaimStats
from campaign_cli.sending.control import record_campaign_event
from campaign_cli.sending.events import CAMPAIGN_COMPLETED, CAMPAIGN_STOPPED, Outbox
from campaign_cli.sending.sinks import OutboxDrainer
from campaign_cli.settings import Settings
from campaign_cli.store.engine import reading, writing
from campaign_cli.store.models import CAMPAIGNS
from campaign_cli.store.statistics import Statistics
from campaign_cli.timeutil import now


COMPLETED, STOPPED, INTERRUPTED, BUSY = "completed", "stopped", "interrupted", "busy"
# A remote batch holds this many targets per request the backend may have in flight.
REMOTE_BATCH_PER_REQUEST = 16
SENDER_PRAGMAS = {
    # A batch writes more than the default 4 MB autocheckpoint: checkpoint (and fsync) less often.
    "wal_autocheckpoint": 25_000,
    # The sender's memory is bounded by its batch and this page cache, not by the audience.
    "cache_size": -16_384,
}


@dataclass
class Progress:
    """What the progress bar shows after each batch."""

    campaign_id: str
    done: int
    total: int
    messages: int
    skipped: int
    failed: int
    sent_here: int = 0  # messages this sender wrote since `send` began (others may share the campaign)


class TokenBucket:
    """`sending.rate`: at most `rate` targets a second, in bursts of at most `capacity`."""

    def __init__(self, rate: float, capacity: int, wait: Callable[[float], Any]):
        self.rate, self.capacity, self.wait = rate, capacity, wait
        self.tokens, self.stamp = float(capacity), time.monotonic()

    def take(self, n: int) -> None:
        self._refill()
        if self.tokens < n:
            self.wait((n - self.tokens) / self.rate)
            self._refill()
        self.tokens -= n

    def _refill(self) -> None:
        current = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (current - self.stamp) * self.rate)
        self.stamp = current


@contextmanager
def _quiet_gc() -> Iterator[None]:
    """Fewer garbage collections while sending: a batch allocates many short-lived dicts but makes
    no reference cycles worth chasing, and full collections cost about a fifth of the loop's time."""
    threshold = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(50_000, 50, 1000)
    try:
        yield
    finally:
        gc.set_threshold(*threshold)
        gc.unfreeze()


class DatabaseLost(CampaignError):
    """The database server went away in the middle of a campaign (restarted, network lost)."""

    exit_code = 1


def _server(engine: Engine) -> str:
    return f"{engine.url.host or 'localhost'}:{engine.url.port or 5432}"


def _first_line(error: BaseException | None) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


def new_owner() -> str:
    """A lease owner name that says where the sender runs."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Heartbeat:
    """Renews this sender's leases (its claims in hand, itself, and on SQLite the campaign) every third of
    a lease, in its own thread and connection, so that a long batch never lets a live sender's lease expire."""

    def __init__(self, engine: Engine, campaign_pk: int, owner: str, lease: timedelta, exclusive: bool):
        self.engine, self.campaign_pk, self.owner, self.lease, self.exclusive = (
            engine, campaign_pk, owner, lease, exclusive)
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, name="heartbeat", daemon=True)

    def __enter__(self) -> Heartbeat:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stopped.set()
        self.thread.join()

    def _run(self) -> None:
        while not self.stopped.wait(self.lease.total_seconds() / 3):
            try:
                self.beat()
            except SQLAlchemyError:
                pass  # a beat lost to a busy or unreachable database; the next one may pass, or the lease expires

    def beat(self) -> None:
        """Push back every lease this sender holds."""
        at = now()
        with writing(self.engine) as conn:
            claims.renew(conn, self.campaign_pk, self.owner, self.lease, at)
            if self.exclusive:
                conn.execute(update(CAMPAIGNS).where(CAMPAIGNS.c.pk == self.campaign_pk,
                                                     CAMPAIGNS.c.lease_owner == self.owner)
                             .values(lease_expires_at=at + self.lease))


class Sender:
    """Sends campaigns in the foreground: claim a batch, plan and render it, write it in one short transaction.

    On PostgreSQL any number of senders share a campaign through claims; on SQLite (one writer)
    a sender also holds a lease on the campaign, which keeps a second sender away.
    """

    def __init__(self, engine: Engine, settings: Settings, *, rate: float | None = None,
                 batch_size: int | None = None, on_progress: Callable[[Progress], None] | None = None):
        self.engine = engine
        self.settings = settings
        self.rate = rate if rate is not None else settings.rate
        size = batch_size or settings.batch_size
        self.batch_size = max(1, min(size, int(self.rate))) if self.rate else size
        self.on_progress = on_progress or (lambda p: None)
        self.owner = new_owner()
        self.interrupted = threading.Event()
        self.lease = timedelta(seconds=settings.lease_seconds)
        self.exclusive = not claims.shared_sending(engine)
        self.statistics = Statistics(engine)
        self._left = 0
        self._sent_here = 0
        self.backend: Backend | None = None
        self._batch_size = self.batch_size

    def interrupt(self) -> None:
        """Ask the loop to finish the batch in hand and return (Ctrl-C)."""
        self.interrupted.set()

    def send(self, campaign_id: str) -> str:
        """Send one in_progress campaign until completed, stopped or interrupted; BUSY if another sender holds it."""
        if self.exclusive and not self._acquire(campaign_id):
            return BUSY
        self._sent_here = 0
        try:
            with reading(self.engine) as conn:
                campaign = conn.execute(select(CAMPAIGNS).where(CAMPAIGNS.c.id == campaign_id)).one()
                run = CampaignRun(conn, campaign, self.settings.render_limits)
            self.backend = open_backend(self.settings, self.engine)
            self.backend.begin(run)
            # A remote batch stays short, so that a retaken claim redoes few network calls.
            concurrency = self.settings.delivery.matrix.concurrency
            self._batch_size = min(self.batch_size, REMOTE_BATCH_PER_REQUEST * concurrency) \
                if self.backend.remote else self.batch_size
            with writing(self.engine) as conn:
                claims.register_sender(conn, campaign.pk, self.owner, self.lease, now())
            with Heartbeat(self.engine, campaign.pk, self.owner, self.lease, self.exclusive), _quiet_gc():
                return self._loop(run)
        except (OperationalError, InterfaceError) as exc:
            if self.exclusive:
                raise  # SQLite: locked, disk full… are told by the CLI's own translation
            raise DatabaseLost(f"lost the connection to PostgreSQL at {_server(self.engine)} while sending campaign "
                               f"{campaign_id!r} ({_first_line(exc.orig)}); the batch in hand was not saved: "
                               f"`campaign run {campaign_id}` resumes it") from None
        finally:
            if self.backend is not None:
                self.backend.close()
                self.backend = None
            self._sign_off(campaign_id)

    def _acquire(self, campaign_id: str) -> bool:
        current = now()
        with writing(self.engine) as conn:
            result = conn.execute(update(CAMPAIGNS).where(
                CAMPAIGNS.c.id == campaign_id, CAMPAIGNS.c.status == lifecycle.IN_PROGRESS,
                or_(CAMPAIGNS.c.lease_owner.is_(None), CAMPAIGNS.c.lease_expires_at < current,
                    CAMPAIGNS.c.lease_owner == self.owner),
            ).values(lease_owner=self.owner, lease_expires_at=current + self.lease))
            return result.rowcount == 1

    def _sign_off(self, campaign_id: str) -> None:
        """Give the claims in hand and the lease back; when that fails too (disk full, database gone) they expire."""
        try:
            with writing(self.engine) as conn:
                pk = conn.scalar(select(CAMPAIGNS.c.pk).where(CAMPAIGNS.c.id == campaign_id))
                claims.sign_off(conn, pk, self.owner, now())
                conn.execute(update(CAMPAIGNS).where(CAMPAIGNS.c.pk == pk, CAMPAIGNS.c.lease_owner == self.owner)
                             .values(lease_owner=None, lease_expires_at=None))
        except SQLAlchemyError:
            pass

    def _loop(self, run: CampaignRun) -> str:
        bucket = TokenBucket(self.rate, self.batch_size, self.interrupted.wait) if self.rate else None
        self._left = run.campaign.stats_targets
        while True:
            if self.interrupted.is_set():
                return INTERRUPTED
            if bucket is not None and self._left > 0:
                # Tokens for the targets the next batch will take: none for the final, empty one.
                bucket.take(min(self._batch_size, self._left))
                if self.interrupted.is_set():
                    return INTERRUPTED
            step = self._claim(run)
            if isinstance(step, Claim):
                self._batch(run, step)
            elif isinstance(step, float):
                self.interrupted.wait(step)
            else:
                return step

    def _claim(self, run: CampaignRun) -> Claim | float | str:
        """In one short transaction: the next claim, or seconds to wait for other senders' claims, or an outcome."""
        at = now()
        # The sender's pragmas here too: a commit with SQLite's default autocheckpoint would checkpoint
        # the whole batch just written to the WAL.
        with writing(self.engine, SENDER_PRAGMAS) as conn:
            row = conn.execute(select(CAMPAIGNS).where(CAMPAIGNS.c.pk == run.campaign.pk)).one()
            if row.status != lifecycle.IN_PROGRESS or (self.exclusive and row.lease_owner != self.owner):
                return STOPPED
            if row.stop_at is not None and row.stop_at <= at:
                return self._stop(conn, row, at)
            claim = claims.retake_expired(conn, row.pk, self.owner, self.lease, at)
            if claim is None:
                claim = claims.claim_next(conn, row, self._batch_size, self.owner, self.lease, at)
            if claim is claims.RETRY:
                return 0.0
            if claim is not None:
                return claim
            expiry = claims.next_lease_expiry(conn, row.pk)
            if expiry is None:
                return self._complete(conn, row, at)
            # Other senders hold the last claims: wait until they are written or their leases run out.
            return min(max((expiry - at).total_seconds(), 0.0) + 0.01, self.lease.total_seconds() / 3, 1.0)

    def _stop(self, conn: Connection, row: Any, at: datetime) -> str:
        """`stop_at` has passed: stop the campaign, once even when several senders notice together."""
        status = conn.scalar(select(CAMPAIGNS.c.status).where(CAMPAIGNS.c.pk == row.pk).with_for_update())
        if status == lifecycle.IN_PROGRESS:
            lifecycle.transition(conn, row.id, "stop")
            record_campaign_event(conn, self.settings, row.id, CAMPAIGN_STOPPED, at)
        return STOPPED

    def _complete(self, conn: Connection, row: Any, at: datetime) -> str:
        """Every target is written: complete the campaign and record `campaign.completed`, once."""
        status = conn.scalar(select(CAMPAIGNS.c.status).where(CAMPAIGNS.c.pk == row.pk).with_for_update())
        if status == lifecycle.IN_PROGRESS:
            claims.fold(conn, row.pk)
            lifecycle.transition(conn, row.id, "complete", stats_completed_at=at)
            record_campaign_event(conn, self.settings, row.id, CAMPAIGN_COMPLETED, at)
        final = conn.execute(select(CAMPAIGNS).where(CAMPAIGNS.c.pk == row.pk)).one()
        self._report(final)
        return COMPLETED if final.status == lifecycle.COMPLETED else STOPPED

    def _batch(self, run: CampaignRun, claim: Claim) -> None:
        """Plan and render the claimed targets with no write transaction open (and deliver them, with a
        remote backend), then write them in one short transaction."""
        assert self.backend is not None
        if self.backend.remote and not self._mark_sending(claim):
            return
        deliveries = self._plan(run, claim)
        if self.backend.remote:
            self.backend.deliver(run, deliveries)
        at = now()
        with writing(self.engine, SENDER_PRAGMAS) as conn:
            if not claims.hold(conn, claim, self.owner):
                return  # the lease went to another sender, who writes this claim
            if not _still_sending(conn, claim.campaign_pk) and not self.backend.remote:
                return  # stopped meanwhile: nothing was delivered, so `campaign resume` sends this batch
            outbox = Outbox(self.settings, run.campaign.id, run.campaign.skip_webhook, run.campaign.skip_push, at)
            result = write_batch(conn, run, deliveries, at, outbox)
            claims.mark_done(conn, claim, _claim_stats(result), at)
            total, done, messages, failed = claims.progress_totals(conn, claim.campaign_pk)
        self.statistics.grew(result.channels_created + result.messages)
        self._left = total - done
        self._sent_here += result.messages
        # Every target done is sent (one message), skipped or failed.
        self.on_progress(Progress(campaign_id=run.campaign.id, done=done, total=total, messages=messages,
                                  skipped=done - messages - failed, failed=failed, sent_here=self._sent_here))

    def _mark_sending(self, claim: Claim) -> bool:
        """Record the intent to deliver the claimed targets (a remote backend); False when the claim was lost."""
        with writing(self.engine) as conn:
            if not claims.hold(conn, claim, self.owner):
                return False
            conn.execute(update(TARGETS).where(TARGETS.c.campaign_pk == claim.campaign_pk,
                                               TARGETS.c.seq.between(claim.lo, claim.hi),
                                               TARGETS.c.state == PENDING).values(state=SENDING))
        return True

    def _plan(self, run: CampaignRun, claim: Claim) -> list[Delivery]:
        """Read, resolve and render the claimed targets, writing nothing."""
        with reading(self.engine) as conn:
            targets = conn.execute(
                select(TARGETS.c.seq, TARGETS.c.target_id, TARGETS.c.kind)
                .where(TARGETS.c.campaign_pk == claim.campaign_pk, TARGETS.c.seq.between(claim.lo, claim.hi))
                .order_by(TARGETS.c.seq)
            ).all()
            return plan_batch(conn, run, [tuple(t) for t in targets])

    def _report(self, row: Any) -> None:
        self.on_progress(Progress(
            campaign_id=row.id, done=row.stats_done, total=row.stats_targets, messages=row.stats_messages_sent,
            skipped=sum((row.stats_skipped or {}).values()), failed=row.stats_failed, sent_here=self._sent_here))


def _claim_stats(result: BatchResult) -> ClaimStats:
    return ClaimStats(result.messages, result.channels_created, result.users_sent, result.failed, result.skipped,
                      result.failed_reasons)


@contextmanager
def delivering_events(engine: Engine, settings: Settings, grace: float = 5.0) -> Iterator[None]:
    """Drain the webhook/push outbox in the background while the body runs; give it `grace` seconds at the end.

    What is not delivered by then stays in the outbox for the next `campaign run`.
    """
    if not (settings.webhook.url or settings.push.url):
        yield
        return
    drainer = OutboxDrainer(engine, settings)
    drainer.start()
    try:
        yield
    finally:
        drainer.stop(grace)


def _still_sending(conn: Connection, campaign_pk: int) -> bool:
    """Whether the campaign is still in progress, read in the batch's write transaction under a shared
    lock (PostgreSQL; SQLite has one writer at a time). A stop takes that row exclusively, so it waits
    for the batches being written and its `campaign.stopped` stats count them; a batch written after
    it sees the stop. Several senders' batches share the lock: they do not wait for one another."""
    status = conn.scalar(select(CAMPAIGNS.c.status).where(CAMPAIGNS.c.pk == campaign_pk).with_for_update(read=True))
    return status == lifecycle.IN_PROGRESS
