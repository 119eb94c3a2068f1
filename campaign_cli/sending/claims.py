"""Claims: how one or many senders share a campaign's targets, and the stats they write.

A sender claims a range of target numbers (`seq` lo..hi) in a short transaction, plans and
renders it with no write transaction open, then writes every effect of the range in one short
transaction that also marks the claim done. A claim carries a lease that the sender's heartbeat
renews whatever a batch takes; a claim whose lease ran out (its sender died) is taken over with
`FOR UPDATE SKIP LOCKED`, and a sender that lost its claim writes nothing. Each claim holds the
stats of its range, so no row is updated by every batch of every sender; they are added to the
campaign row once, when it completes.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, and_, func, or_, select, update

from campaign_cli.store.bulk import insert_ignore, insert_statement
from campaign_cli.store.models import CAMPAIGNS, CAMPAIGN_CLAIMS as CLAIMS, CAMPAIGN_SENDERS as SENDERS
from campaign_cli.timeutil import now, to_json

# Statuses whose stats may still be spread over claims not yet added to the campaign row.
UNFOLDED_STATUSES = frozenset({"in_progress", "stopped"})


@dataclass(frozen=True)
class Claim:
    """A range of targets one sender holds."""

    campaign_pk: int
    lo: int
    hi: int

    @property
    def size(self) -> int:
        return self.hi - self.lo + 1


@dataclass
class ClaimStats:
    """What a written claim changed."""

    messages: int = 0
    channels_created: int = 0
    users_sent: int = 0
    failed: int = 0
    skipped: Counter | None = None
    failed_reasons: Counter | None = None


# Returned by claim_next when another sender claimed the same range first.
RETRY = Claim(0, 0, -1)


def shared_sending(conn_or_engine: Connection | Engine) -> bool:
    """Whether several senders may send one campaign at once: PostgreSQL yes; SQLite has one writer."""
    return conn_or_engine.dialect.name == "postgresql"


# ---------------------------------------------------------------- claiming


def retake_expired(conn: Connection, campaign_pk: int, owner: str, lease: timedelta, at: datetime) -> Claim | None:
    """Take over the oldest claim whose sender let its lease run out (skipping claims another sender is taking),
    or one this sender left unwritten."""
    row = conn.execute(
        select(CLAIMS.c.lo, CLAIMS.c.hi)
        .where(CLAIMS.c.campaign_pk == campaign_pk, CLAIMS.c.done_at.is_(None),
               or_(CLAIMS.c.lease_expires_at < at, CLAIMS.c.owner == owner))
        .order_by(CLAIMS.c.lo).limit(1).with_for_update(skip_locked=True)
    ).first()
    if row is None:
        return None
    conn.execute(update(CLAIMS).where(CLAIMS.c.campaign_pk == campaign_pk, CLAIMS.c.lo == row.lo)
                 .values(owner=owner, lease_expires_at=at + lease))
    return Claim(campaign_pk, row.lo, row.hi)


def claim_next(conn: Connection, campaign: Any, size: int, owner: str, lease: timedelta, at: datetime) -> Claim | None:
    """Claim the next `size` targets of `campaign` (its row) nobody has claimed yet; None when every target is claimed.

    Two senders may pick the same range at once: the primary key lets one insert it, and the
    other is told to try again (`RETRY`). The targets a sender of an earlier release wrote
    before an upgrade (the row's own `stats_done`, with no claims) are never claimed again.
    """
    campaign_pk, targets = campaign.pk, campaign.stats_targets
    last = conn.scalar(select(CLAIMS.c.hi).where(CLAIMS.c.campaign_pk == campaign_pk)
                       .order_by(CLAIMS.c.lo.desc()).limit(1))
    lo = max(last or 0, campaign.stats_done) + 1
    if lo > targets:
        return None
    claim = Claim(campaign_pk, lo, min(lo + size - 1, targets))
    inserted = conn.execute(_insert_claim(conn).values(
        campaign_pk=campaign_pk, lo=claim.lo, hi=claim.hi, owner=owner, lease_expires_at=at + lease, skipped={}))
    return claim if inserted.rowcount == 1 else RETRY


def _insert_claim(conn: Connection) -> Any:
    return insert_statement(conn, CLAIMS).on_conflict_do_nothing()


def next_lease_expiry(conn: Connection, campaign_pk: int) -> datetime | None:
    """When the first claim still in hand (by a live or a dead sender) can be taken over; None when all are done."""
    return conn.scalar(select(func.min(CLAIMS.c.lease_expires_at))
                       .where(CLAIMS.c.campaign_pk == campaign_pk, CLAIMS.c.done_at.is_(None)))


def hold(conn: Connection, claim: Claim, owner: str) -> bool:
    """Lock the claim for the write transaction; False when its lease went to another sender (or it is done).

    Taken first in the write transaction: a sender taking the claim over waits for, or skips, this lock.
    """
    result = conn.execute(update(CLAIMS).where(
        CLAIMS.c.campaign_pk == claim.campaign_pk, CLAIMS.c.lo == claim.lo, CLAIMS.c.owner == owner,
        CLAIMS.c.done_at.is_(None)).values(owner=owner))
    return result.rowcount == 1


def mark_done(conn: Connection, claim: Claim, stats: ClaimStats, at: datetime) -> None:
    """Record a written claim and its stats (in the write transaction, after `hold`)."""
    conn.execute(update(CLAIMS).where(CLAIMS.c.campaign_pk == claim.campaign_pk, CLAIMS.c.lo == claim.lo).values(
        done_at=at, messages=stats.messages, channels_created=stats.channels_created, users_sent=stats.users_sent,
        failed=stats.failed, skipped=dict(stats.skipped or {}), failed_reasons=dict(stats.failed_reasons or {})))


def release(conn: Connection, campaign_pk: int, owner: str, at: datetime) -> None:
    """Let other senders take over the claims this sender still holds (it is leaving)."""
    conn.execute(update(CLAIMS).where(CLAIMS.c.campaign_pk == campaign_pk, CLAIMS.c.owner == owner,
                                      CLAIMS.c.done_at.is_(None)).values(lease_expires_at=at))


# ---------------------------------------------------------------- senders and heartbeat


def register_sender(conn: Connection, campaign_pk: int, owner: str, lease: timedelta, at: datetime) -> None:
    """Note that this sender works on the campaign (for `status`)."""
    insert_ignore(conn, SENDERS, [{"campaign_pk": campaign_pk, "owner": owner, "started_at": at, "last_seen": at,
                                   "lease_expires_at": at + lease}])


def renew(conn: Connection, campaign_pk: int, owner: str, lease: timedelta, at: datetime) -> None:
    """The heartbeat: push back the lease of this sender's claims in hand and of the sender itself."""
    conn.execute(update(CLAIMS).where(CLAIMS.c.campaign_pk == campaign_pk, CLAIMS.c.owner == owner,
                                      CLAIMS.c.done_at.is_(None)).values(lease_expires_at=at + lease))
    conn.execute(update(SENDERS).where(SENDERS.c.campaign_pk == campaign_pk, SENDERS.c.owner == owner)
                 .values(last_seen=at, lease_expires_at=at + lease))


def sign_off(conn: Connection, campaign_pk: int, owner: str, at: datetime) -> None:
    """A sender leaving: its claims in hand are free to take, and it is no longer live."""
    release(conn, campaign_pk, owner, at)
    conn.execute(update(SENDERS).where(SENDERS.c.campaign_pk == campaign_pk, SENDERS.c.owner == owner)
                 .values(last_seen=at, lease_expires_at=None))


def senders_of(engine: Engine, campaign_id: str) -> list[dict[str, Any]]:
    """The senders that worked on a campaign: owner, batches and targets written, last seen, live, and
    until when its lease runs (null once it left)."""
    with engine.connect() as conn:
        return senders_json(conn, campaign_id)


def senders_json(conn: Connection, campaign_id: str) -> list[dict[str, Any]]:
    """`senders_of` inside a connection the caller holds."""
    pk = conn.scalar(select(CAMPAIGNS.c.pk).where(CAMPAIGNS.c.id == campaign_id))
    if pk is None:
        return []
    work = {owner: (batches, targets) for owner, batches, targets in conn.execute(
        select(CLAIMS.c.owner, func.count(), func.sum(CLAIMS.c.hi - CLAIMS.c.lo + 1))
        .where(CLAIMS.c.campaign_pk == pk, CLAIMS.c.done_at.is_not(None)).group_by(CLAIMS.c.owner))}
    current = now()
    senders = []
    for owner, last_seen, expires in conn.execute(
            select(SENDERS.c.owner, SENDERS.c.last_seen, SENDERS.c.lease_expires_at)
            .where(SENDERS.c.campaign_pk == pk).order_by(SENDERS.c.started_at, SENDERS.c.owner)):
        batches, targets = work.get(owner, (0, 0))
        senders.append({"owner": owner, "batches": batches, "targets": int(targets or 0),
                        "last_seen": to_json(last_seen), "live": expires is not None and expires > current,
                        "lease_expires_at": to_json(expires)})
    return senders


# ---------------------------------------------------------------- stats


# Claims written but whose stats are not yet on the campaign row.
_WRITTEN_UNFOLDED = and_(CLAIMS.c.done_at.is_not(None), CLAIMS.c.folded.is_(False))


def claim_totals(conn: Connection, campaign_pks: list[int]) -> dict[int, dict[str, Any]]:
    """Per campaign, the stats of written claims not yet added to the campaign row."""
    if not campaign_pks:
        return {}
    totals: dict[int, dict[str, Any]] = {}
    query = (select(CLAIMS.c.campaign_pk, CLAIMS.c.hi - CLAIMS.c.lo + 1, CLAIMS.c.messages, CLAIMS.c.channels_created,
                    CLAIMS.c.users_sent, CLAIMS.c.failed, CLAIMS.c.skipped, CLAIMS.c.failed_reasons)
             .where(CLAIMS.c.campaign_pk.in_(campaign_pks), _WRITTEN_UNFOLDED))
    for pk, done, messages, created, users_sent, failed, skipped, failed_reasons in conn.execute(query):
        t = totals.setdefault(pk, {"stats_done": 0, "stats_messages_sent": 0, "stats_channels_created": 0,
                                   "stats_users_sent": 0, "stats_failed": 0, "stats_skipped": Counter(),
                                   "stats_failed_reasons": Counter()})
        t["stats_done"] += done
        t["stats_messages_sent"] += messages
        t["stats_channels_created"] += created
        t["stats_users_sent"] += users_sent
        t["stats_failed"] += failed
        t["stats_skipped"].update(skipped or {})
        t["stats_failed_reasons"].update(failed_reasons or {})
    return totals


def progress_totals(conn: Connection, campaign_pk: int) -> tuple[int, int, int, int]:
    """(targets, done, messages, failed) of a campaign so far: its row plus its written claims, summed by
    the database. The sender asks after every batch: reading every claim back into Python instead grew
    with the number of claims, quadratic over a campaign sent in small batches."""
    sums = (select(func.coalesce(func.sum(CLAIMS.c.hi - CLAIMS.c.lo + 1), 0), func.coalesce(func.sum(CLAIMS.c.messages), 0),
                   func.coalesce(func.sum(CLAIMS.c.failed), 0))
            .where(CLAIMS.c.campaign_pk == campaign_pk, _WRITTEN_UNFOLDED))
    done, messages, failed = conn.execute(sums).one()
    row = conn.execute(select(CAMPAIGNS.c.stats_targets, CAMPAIGNS.c.stats_done, CAMPAIGNS.c.stats_messages_sent,
                              CAMPAIGNS.c.stats_failed).where(CAMPAIGNS.c.pk == campaign_pk)).one()
    return row.stats_targets, row.stats_done + done, row.stats_messages_sent + messages, row.stats_failed + failed


class LiveRow:
    """A campaigns row with the stats of its unfolded claims added; reads like the row itself."""

    def __init__(self, row: Any, totals: dict[str, Any]):
        self._row = row
        self._totals = totals

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._row, name)
        extra = self._totals.get(name)
        if extra is None:
            return value
        if isinstance(extra, Counter):
            merged = Counter(value or {})
            merged.update(extra)
            return dict(merged)
        return value + extra


def with_claim_stats(conn: Connection, rows: list[Any]) -> list[Any]:
    """The rows with the stats their senders hold in claims (only in_progress and stopped campaigns have any)."""
    pending = [row.pk for row in rows if row.status in UNFOLDED_STATUSES]
    totals = claim_totals(conn, pending)
    return [LiveRow(row, totals[row.pk]) if row.pk in totals else row for row in rows]


def fold(conn: Connection, campaign_pk: int) -> None:
    """Add the stats of every written claim to the campaign row, once (when the campaign completes)."""
    totals = claim_totals(conn, [campaign_pk]).get(campaign_pk)
    if totals is None:
        return
    row = conn.execute(select(CAMPAIGNS).where(CAMPAIGNS.c.pk == campaign_pk)).one()
    live = LiveRow(row, totals)
    conn.execute(update(CAMPAIGNS).where(CAMPAIGNS.c.pk == campaign_pk).values(
        **{name: getattr(live, name) for name in totals}))
    conn.execute(update(CLAIMS).where(and_(CLAIMS.c.campaign_pk == campaign_pk, CLAIMS.c.done_at.is_not(None)))
                 .values(folded=True))


def outstanding_targets() -> Any:
    """An expression: per in_progress campaign, targets not yet done (for the monthly quota)."""
    done = (select(func.coalesce(func.sum(CLAIMS.c.hi - CLAIMS.c.lo + 1), 0))
            .where(CLAIMS.c.campaign_pk == CAMPAIGNS.c.pk, _WRITTEN_UNFOLDED)
            .scalar_subquery())
    return CAMPAIGNS.c.stats_targets - CAMPAIGNS.c.stats_done - done
