"""Delivery backends: where a campaign's messages go once the sender loop has planned and rendered them.

The local database is the ledger whatever the backend: targets, messages, events, stats and the
webhook/push outbox are always written there. A backend only decides whether the messages also
leave the machine. It is one module exposing a class that follows `Backend`:

- `local`: the built-in chat store. Writing the batch into the database *is* the delivery, so
  the sender loop keeps its one-transaction-per-batch path (`remote` is False).
- `matrix`: a Matrix homeserver's client-server API.

A remote backend is driven by the loop in three steps, so that no database transaction is open
while it waits on the network: the batch's targets are marked `sending` (short transaction),
`deliver` is called with the planned batch, then the results are written (short transaction).
A crash anywhere in between leaves the targets `sending`; the next sender plans them again and
calls `deliver` again, so `deliver` must be idempotent: it derives an idempotency key from
`CampaignRun.message_id(seq)` and finds the rooms it created before (see `remote_rooms`).

Adding a chat API (Stream Chat's REST API, Mattermost, Slack) means one module here with a class
like `MatrixBackend` and one entry in `open_backend`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy import Engine

from campaign_cli.settings import Settings
from campaign_cli.store.engine import reading

if TYPE_CHECKING:
    from campaign_cli.sending.batch import CampaignRun, Delivery


class Backend(Protocol):
    """What the sender loop needs from a delivery backend."""

    name: str
    # False: the batch's database write is the delivery (one transaction per batch, nothing to call).
    remote: bool

    def check_sender(self, run: "CampaignRun") -> object:
        """Check, without changing anything, that the credentials belong to the campaign's sender
        (raise InvalidInput, exit code 3, saying whose they are)."""

    def begin(self, run: "CampaignRun") -> None:
        """Before the first batch of a campaign: check the credentials belong to the campaign's sender
        (raise InvalidInput otherwise) and reconcile what a dead sender may have left half done."""

    def deliver(self, run: "CampaignRun", deliveries: list["Delivery"]) -> None:
        """Deliver every planned delivery whose state is `sent`: set `d.remote` to
        `{"backend", "room_id", "event_id"}`, or `d.give_up("failed", "<backend>:<code>: details")`
        for a target the server refused. Raise a CampaignError when the server cannot be reached at all
        (the batch is then left `sending` and redone by the next sender). Must be idempotent."""

    def refresh_reads(self, run: "CampaignRun") -> int:
        """Copy the receivers' read markers of the campaign's messages from the server into the local
        channel members' `last_read_at` (which `stats_users_read` counts); returns how many moved."""

    def close(self) -> None:
        """Release connections and threads."""


def check_sender(engine: Engine, settings: Settings, campaign_id: str) -> None:
    """Before a campaign starts sending: a remote backend's credentials must be its sender's."""
    if settings.delivery.backend != "local":
        _with_backend(engine, settings, campaign_id, lambda backend, run: backend.check_sender(run))


def refresh_reads(engine: Engine, settings: Settings, campaign_id: str) -> int:
    """Fetch the campaign's read markers from the configured backend into the ledger."""
    return _with_backend(engine, settings, campaign_id, lambda backend, run: backend.refresh_reads(run))


def _with_backend(engine: Engine, settings: Settings, campaign_id: str, action: Any) -> Any:
    from campaign_cli.campaigns import get_campaign_row
    from campaign_cli.sending.batch import CampaignRun

    backend = open_backend(settings, engine)
    try:
        with reading(engine) as conn:
            run = CampaignRun(conn, get_campaign_row(conn, campaign_id))
        return action(backend, run)
    finally:
        backend.close()


def open_backend(settings: Settings, engine: Engine) -> Backend:
    """The backend the `delivery:` config section chooses."""
    if settings.delivery.backend == "matrix":
        from campaign_cli.delivery.matrix import MatrixBackend

        return MatrixBackend(settings.delivery.matrix, engine)
    from campaign_cli.delivery.local import LocalBackend

    return LocalBackend()
