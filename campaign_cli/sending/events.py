"""Event records and their outbox rows for the webhook and the push gateway.

Events are stored lean (the message itself lives in `messages`); the JSON a webhook receives
is built only when a webhook is configured, in the same transaction as the event.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable

from campaign_cli.settings import Settings
from campaign_cli.timeutil import to_json

CAMPAIGN_STARTED = "campaign.started"
CAMPAIGN_COMPLETED = "campaign.completed"
CAMPAIGN_STOPPED = "campaign.stopped"
CHANNEL_CREATED = "channel.created"
MESSAGE_NEW = "message.new"
# The events `skip_webhook` keeps from the webhook.
SKIPPABLE = frozenset({CHANNEL_CREATED, MESSAGE_NEW})


def event_row(type_: str, at: datetime, campaign_id: str, *, cid: str | None = None, message_id: str | None = None,
              user_id: str | None = None, payload: dict | None = None) -> dict[str, Any]:
    """One `events` row."""
    return {"type": type_, "campaign_id": campaign_id, "cid": cid, "message_id": message_id,
            "user_id": user_id, "created_at": at, "payload": payload or {}}


def _dumps(data: dict[str, Any]) -> str:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"), default=str)


@dataclass
class Outbox:
    """Collects the outbox rows of one transaction, honouring the configured sinks and skip flags."""

    settings: Settings
    campaign_id: str
    skip_webhook: bool
    skip_push: bool
    at: datetime
    rows: list[dict[str, Any]] = field(default_factory=list)

    @property
    def wants_webhook(self) -> bool:
        return bool(self.settings.webhook.url)

    def webhook_wants(self, type_: str) -> bool:
        """Whether an event of this type goes to the webhook."""
        return self.wants_webhook and not (self.skip_webhook and type_ in SKIPPABLE)

    @property
    def wants_push(self) -> bool:
        return bool(self.settings.push.url) and not self.skip_push

    def event(self, type_: str, body: Callable[[], dict[str, Any]]) -> None:
        """Queue an event for the webhook; `body` is only called when it is wanted."""
        if self.webhook_wants(type_):
            self._add("webhook", type_, {"type": type_, **body(), "created_at": to_json(self.at)})

    def push(self, notification: dict[str, Any]) -> None:
        """Queue a push notification for the push gateway."""
        if self.wants_push:
            self._add("push", MESSAGE_NEW, notification)

    def _add(self, sink: str, type_: str, data: dict[str, Any]) -> None:
        self.rows.append({"sink": sink, "event_type": type_, "campaign_id": self.campaign_id, "body": _dumps(data),
                          "status": "pending", "attempts": 0, "next_attempt_at": self.at, "last_error": None,
                          "created_at": self.at})


def event_json(row: Any, message: dict[str, Any] | None = None) -> dict[str, Any]:
    """An event as printed by `campaign events list --json`."""
    data = {"type": row.type, "created_at": to_json(row.created_at), "campaign_id": row.campaign_id,
            "cid": row.cid, "message_id": row.message_id, "user_id": row.user_id}
    data.update(row.payload or {})
    if message is not None:
        data["message"] = message
    return {k: v for k, v in data.items() if v is not None}
