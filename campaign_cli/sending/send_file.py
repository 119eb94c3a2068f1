"""`campaign send -f FILE`: create, start and send in one step, idempotently.

A definition without an `id` gets one derived from its content, so running the same file
again finds the same campaign: once it has completed, nothing is sent.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from sqlalchemy import Engine, select

from campaign_cli import lifecycle
from campaign_cli.campaigns import create_campaigns
from campaign_cli.definitions import load_definitions
from campaign_cli.errors import Conflict, InvalidInput
from campaign_cli.sending import control
from campaign_cli.settings import Settings
from campaign_cli.store.engine import reading
from campaign_cli.store.models import CAMPAIGNS



def send_file(engine: Engine, settings: Settings, path: Path) -> tuple[str, control.Started]:
    """Make sure the file's campaign exists and is started; returns its id and status.

    `in_progress` means there is sending to do; `completed` that there is none (a rerun);
    `scheduled` that the definition's `scheduled_for` lies in the future.
    """
    definitions = load_definitions(path, "campaigns")
    if len(definitions) != 1:
        raise InvalidInput(f"{path}: `send` takes a file with exactly one campaign, found {len(definitions)}")
    where, spec = definitions[0]
    if not spec.get("id"):
        spec = {**spec, "id": "send-" + hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()[:16]}
    campaign_id = spec["id"]
    row = None
    if isinstance(campaign_id, str):  # any other id is not stored: creating reports it with the other problems
        with reading(engine) as conn:
            row = conn.execute(select(CAMPAIGNS.c.status, CAMPAIGNS.c.scheduled_for)
                               .where(CAMPAIGNS.c.id == campaign_id)).first()
    if row is None:
        create_campaigns(engine, [(where, spec)])
        return campaign_id, control.start(engine, settings, campaign_id)
    if row.status == lifecycle.DRAFT:
        return campaign_id, control.start(engine, settings, campaign_id)
    if row.status == lifecycle.STOPPED:
        raise Conflict(f"campaign {campaign_id!r} is stopped; 'campaign resume {campaign_id}' continues it")
    return campaign_id, control.Started(row.status, row.scheduled_for)
