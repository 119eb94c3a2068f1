"""The sender loop: lease a campaign, then plan and write batches until it is done, stopped or interrupted.

With the built-in chat store each batch is one transaction (see batch.py), so a crash loses at most
the batch in hand, which the next sender redoes: nothing is lost and nothing is sent twice. With a
remote backend (see campaign_cli/delivery) a batch is three steps and no transaction is open while
waiting on the network: mark the targets `sending` (short transaction), plan and deliver, write the
results (short transaction); a crash in between leaves the targets `sending`, and the next sender
delivers them again under the same idempotency keys. A lease (owner, expiry), renewed every batch,
keeps a second sender away; an expired lease is taken over.
"""

from __future__ import annotations

import gc
import os
import socket
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import Engine, or_, select, update
from sqlalchemy.exc import SQLAlchemyError

from campaign_cli import lifecycle
from campaign_cli.delivery import Backend, open_backend
from campaign_cli.sending.batch import PENDING, SENDING, TARGETS, BatchResult, CampaignRun, plan_batch, write_batch
from campaign_cli.sending.control import record_campaign_event
from campaign_cli.sending.events import CAMPAIGN_COMPLETED, CAMPAIGN_STOPPED, Outbox
from campaign_cli.sending.sinks import OutboxDrainer
from campaign_cli.settings import Settings
from campaign_cli.store.engine import reading, writing
from campaign_cli.store.models import Campaign
from campaign_cli.timeutil import now

CAMPAIGNS = Campaign.__table__

COMPLETED, STOPPED, INTERRUPTED, BUSY = "completed", "stopped", "interrupted", "busy"
# A remote batch holds this many targets per request the backend may have in flight.
REMOTE_BATCH_PER_REQUEST = 16
SENDER_PRAGMAS = {
    # A batch writes more than the default 4 MB autocheckpoint: checkpoint (and fsync) less often.
    "wal_autocheckpoint": 25_000,
    # The sender's memory is bounded by its batch and this page cache, not by the audience.
    "cache_size": -16_384,
    # Every row a batch writes refers to rows the same batch read or wrote under the write lock;
    # checking the foreign keys again costs a random page read per message at a million channels.
    "foreign_keys": "OFF",
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


def new_owner() -> str:
    """A lease owner name that says where the sender runs."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Sender:
    """Sends campaigns in the foreground, one batch per transaction."""

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
        self._left = 0
        self.backend: Backend | None = None
        self._batch_size = self.batch_size

    def interrupt(self) -> None:
        """Ask the loop to finish the batch in hand and return (Ctrl-C)."""
        self.interrupted.set()

    def send(self, campaign_id: str) -> str:
        """Send one in_progress campaign until completed, stopped or interrupted; BUSY if another sender holds it."""
        if not self._acquire(campaign_id):
            return BUSY
        try:
            with reading(self.engine) as conn:
                campaign = conn.execute(select(CAMPAIGNS).where(CAMPAIGNS.c.id == campaign_id)).one()
                run = CampaignRun(conn, campaign)
            self.backend = open_backend(self.settings, self.engine)
            self.backend.begin(run)
            # A remote batch stays short, so that the lease outlives a batch's network calls and retries.
            concurrency = self.settings.delivery.matrix.concurrency
            self._batch_size = min(self.batch_size, REMOTE_BATCH_PER_REQUEST * concurrency) \
                if self.backend.remote else self.batch_size
            with _quiet_gc():
                return self._loop(run)
        finally:
            if self.backend is not None:
                self.backend.close()
                self.backend = None
            self._release(campaign_id)

    def _acquire(self, campaign_id: str) -> bool:
        current = now()
        with writing(self.engine) as conn:
            result = conn.execute(update(CAMPAIGNS).where(
                CAMPAIGNS.c.id == campaign_id, CAMPAIGNS.c.status == lifecycle.IN_PROGRESS,
                or_(CAMPAIGNS.c.lease_owner.is_(None), CAMPAIGNS.c.lease_expires_at < current,
                    CAMPAIGNS.c.lease_owner == self.owner),
            ).values(lease_owner=self.owner, lease_expires_at=current + self.lease))
            return result.rowcount == 1

    def _release(self, campaign_id: str) -> None:
        """Give the lease back; when that fails too (disk full, database gone) it simply expires."""
        try:
            with writing(self.engine) as conn:
                conn.execute(update(CAMPAIGNS).where(CAMPAIGNS.c.id == campaign_id, CAMPAIGNS.c.lease_owner == self.owner)
                             .values(lease_owner=None, lease_expires_at=None))
        except SQLAlchemyError:
            pass

    def _loop(self, run: CampaignRun) -> str:
        bucket = TokenBucket(self.rate, self.batch_size, self.interrupted.wait) if self.rate else None
        self._left = run.campaign.stats_targets - run.campaign.stats_done
        while True:
            if self.interrupted.is_set():
                return INTERRUPTED
            if bucket is not None and self._left > 0:
                # Tokens for the targets the next batch will take: none for the final, empty one.
                bucket.take(min(self._batch_size, self._left))
                if self.interrupted.is_set():
                    return INTERRUPTED
            outcome = self._remote_batch(run) if self.backend and self.backend.remote else self._batch(run)
            if outcome is not None:
                return outcome

    def _batch(self, run: CampaignRun) -> str | None:
        """Plan and write the next batch in one transaction; returns an outcome when the loop should end."""
        at = now()
        with writing(self.engine, SENDER_PRAGMAS) as conn:
            row, targets, outcome = self._claim(conn, run, at)
            if outcome is not None:
                return outcome
            outbox = Outbox(self.settings, row.id, row.skip_webhook, row.skip_push, at)
            deliveries = plan_batch(conn, run, targets)
            values = self._record(conn, row, write_batch(conn, run, deliveries, at, outbox), at)
        self._left = row.stats_targets - values["stats_done"]
        self._report(row, values)
        return None

    def _remote_batch(self, run: CampaignRun) -> str | None:
        """Mark the next batch `sending`, plan and deliver it with no transaction open, then record the results."""
        assert self.backend is not None
        with writing(self.engine) as conn:
            row, targets, outcome = self._claim(conn, run, now())
            if outcome is not None:
                return outcome
            conn.execute(update(TARGETS).where(TARGETS.c.campaign_pk == row.pk,
                                               TARGETS.c.seq.between(targets[0][0], targets[-1][0]),
                                               TARGETS.c.state == PENDING).values(state=SENDING))
        with reading(self.engine) as conn:
            deliveries = plan_batch(conn, run, targets)
        with self._lease_kept(run):
            self.backend.deliver(run, deliveries)
        at = now()
        with writing(self.engine, SENDER_PRAGMAS) as conn:
            row = conn.execute(select(CAMPAIGNS).where(CAMPAIGNS.c.pk == run.campaign.pk)).one()
            if row.lease_owner != self.owner or row.stats_done >= targets[-1][0]:
                return STOPPED  # taken over meanwhile; the deliveries were idempotent
            outbox = Outbox(self.settings, row.id, row.skip_webhook, row.skip_push, at)
            values = self._record(conn, row, write_batch(conn, run, deliveries, at, outbox), at)
        self._left = row.stats_targets - values["stats_done"]
        self._report(row, values)
        return None

    @contextmanager
    def _lease_kept(self, run: CampaignRun) -> Iterator[None]:
        """Renew the lease while the body waits on the network: a slow homeserver must not let a second
        sender take the campaign over mid-batch (it would find the batch's rooms half created)."""
        stop = threading.Event()

        def renew() -> None:
            while not stop.wait(self.lease.total_seconds() / 3):
                try:
                    with writing(self.engine) as conn:
                        conn.execute(update(CAMPAIGNS).where(CAMPAIGNS.c.pk == run.campaign.pk,
                                                             CAMPAIGNS.c.lease_owner == self.owner)
                                     .values(lease_expires_at=now() + self.lease))
                except SQLAlchemyError:
                    pass  # the next renewal, or the batch's own write, tries again

        keeper = threading.Thread(target=renew, name="lease", daemon=True)
        keeper.start()
        try:
            yield
        finally:
            stop.set()
            keeper.join()

    def _claim(self, conn: Any, run: CampaignRun, at: Any) -> tuple[Any, list[tuple[int, str, str]], str | None]:
        """The campaign row and the next batch of targets; or the outcome when the loop should end."""
        row = conn.execute(select(CAMPAIGNS).where(CAMPAIGNS.c.pk == run.campaign.pk)).one()
        if row.lease_owner != self.owner or row.status != lifecycle.IN_PROGRESS:
            return row, [], STOPPED
        if row.stop_at is not None and row.stop_at <= at:
            lifecycle.transition(conn, row.id, "stop")
            record_campaign_event(conn, self.settings, row.id, CAMPAIGN_STOPPED, at)
            return row, [], STOPPED
        targets = conn.execute(
            select(TARGETS.c.seq, TARGETS.c.target_id, TARGETS.c.kind)
            .where(TARGETS.c.campaign_pk == row.pk, TARGETS.c.seq > row.stats_done)
            .order_by(TARGETS.c.seq).limit(self._batch_size)
        ).all()
        if not targets:
            lifecycle.transition(conn, row.id, "complete", stats_completed_at=at)
            record_campaign_event(conn, self.settings, row.id, CAMPAIGN_COMPLETED, at)
            self._report(row)
            return row, [], COMPLETED
        if self.backend is not None and self.backend.remote:
            conn.execute(update(CAMPAIGNS).where(CAMPAIGNS.c.pk == row.pk).values(lease_expires_at=at + self.lease))
        return row, [tuple(t) for t in targets], None

    def _record(self, conn: Any, row: Any, result: BatchResult, at: Any) -> dict[str, Any]:
        """Add a written batch to the campaign's stats and renew the lease."""
        skipped = Counter(row.stats_skipped or {})
        skipped.update(result.skipped)
        failed = Counter(row.stats_failed_reasons or {})
        failed.update(result.failed_reasons)
        values = dict(
            stats_done=row.stats_done + result.done,
            stats_messages_sent=row.stats_messages_sent + result.messages,
            stats_channels_created=row.stats_channels_created + result.channels_created,
            stats_users_sent=row.stats_users_sent + result.users_sent,
            stats_failed=row.stats_failed + result.failed,
            stats_skipped=dict(skipped),
            stats_failed_reasons=dict(failed),
            lease_expires_at=at + self.lease,
            updated_at=at,
        )
        conn.execute(update(CAMPAIGNS).where(CAMPAIGNS.c.pk == row.pk).values(**values))
        return values

    def _report(self, row: Any, values: dict | None = None) -> None:
        values = values or {}
        skipped = values.get("stats_skipped", row.stats_skipped) or {}
        self.on_progress(Progress(
            campaign_id=row.id, done=values.get("stats_done", row.stats_done), total=row.stats_targets,
            messages=values.get("stats_messages_sent", row.stats_messages_sent),
            skipped=sum(skipped.values()), failed=values.get("stats_failed", row.stats_failed)))


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
