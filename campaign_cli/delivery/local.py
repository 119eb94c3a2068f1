"""The built-in chat store: messages land in the database's own chat tables, nothing leaves the machine."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from campaign_cli.sending.batch import CampaignRun, Delivery


class LocalBackend:
    """Writing a batch into the database is its delivery; the sender loop does that in one transaction."""

    name = "local"
    remote = False

    def check_sender(self, run: "CampaignRun") -> None:
        """Nothing to check."""

    def begin(self, run: "CampaignRun") -> None:
        """Nothing to check: the sender is a user of the local directory (checked when the run starts)."""

    def deliver(self, run: "CampaignRun", deliveries: list["Delivery"]) -> None:
        """Nothing to do before the batch is written."""

    def refresh_reads(self, run: "CampaignRun") -> int:
        """Read markers are local already."""
        return 0

    def close(self) -> None:
        """Nothing to release."""
