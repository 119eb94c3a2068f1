"""`campaign preview`: plan and render the first targets exactly as the sender would, writing nothing."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, select

from campaign_cli.campaigns import get_campaign_row
from campaign_cli.limits import RenderLimits
from campaign_cli.paging import check_limit
from campaign_cli.sending.batch import SENT, TARGETS, CampaignRun, Delivery, plan_batch
from campaign_cli.sending.freeze import first_targets
from campaign_cli.store.engine import reading
from campaign_cli.templates import missing_fields


def preview(engine: Engine, campaign_id: str, limit: int, limits: RenderLimits = RenderLimits()) -> list[dict[str, Any]]:
    """The next `limit` targets: channel, what would happen, rendered text and template fields missing for them."""
    check_limit(limit, 1000)
    with reading(engine) as conn:
        campaign = get_campaign_row(conn, campaign_id)
        run = CampaignRun(conn, campaign, limits)
        if campaign.stats_started_at is None:
            targets = first_targets(conn, campaign, limit)
        else:
            targets = [tuple(t) for t in conn.execute(
                select(TARGETS.c.seq, TARGETS.c.target_id, TARGETS.c.kind)
                .where(TARGETS.c.campaign_pk == campaign.pk, TARGETS.c.state == "pending")
                .order_by(TARGETS.c.seq).limit(limit))]
        deliveries = plan_batch(conn, run, targets)
    return [_item(run, d) for d in deliveries]


def _item(run: CampaignRun, d: Delivery) -> dict[str, Any]:
    if d.state != SENT:
        action = f"{d.state}: {d.reason}"
    elif d.new_channel is not None:
        action = "create channel"
    else:
        action = "existing channel"
    return {"target_id": d.target_id, "kind": d.kind, "cid": d.cid, "action": action,
            "text": d.text if d.state == SENT else None,
            "missing_fields": missing_fields(run.templates, d.context) if d.state == SENT else []}
