"""The homeserver's user directory as a source of user records (`campaign users import --from-matrix`).

Pages Synapse's admin API (`GET /_synapse/admin/v2/users`, an admin token) and yields one record
per active, non-guest account: `id` = localpart, `name` = display name, `matrix_id` = the full id.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from campaign_cli.delivery.matrix_http import MatrixHttp
from campaign_cli.errors import InvalidInput
from campaign_cli.settings import MatrixSettings

ADMIN_API = "/_synapse/admin/v2"
PAGE = 500


class MatrixDirectory:
    """A record source (like `records.RecordSource`) reading the homeserver's accounts page by page."""

    size = 0
    bytes_read = 0

    def __init__(self, settings: MatrixSettings):
        if not settings.homeserver or not settings.admin_token:
            raise InvalidInput("--from-matrix: needs delivery.matrix.homeserver and delivery.matrix.admin_token "
                               "in the config file")
        self.settings = settings
        self.name = f"matrix:{settings.homeserver}"

    def records(self) -> Iterator[tuple[int, Any]]:
        """Yield `(n, user record)` for every active, non-guest account."""
        http = MatrixHttp(self.settings.homeserver or "", self.settings.admin_token or "", concurrency=1,
                          timeout=self.settings.timeout, max_attempts=self.settings.max_attempts)
        try:
            n = 0
            token: str | None = "0"
            while token is not None:
                page = http.call("GET", "/users", api=ADMIN_API, params={
                    "from": token, "limit": str(PAGE), "guests": "false", "deactivated": "false"})
                for account in page.get("users", []):
                    if account.get("deactivated") or account.get("is_guest"):
                        continue
                    n += 1
                    user_id = account["name"]
                    yield n, {"id": user_id[1:].split(":", 1)[0], "name": account.get("displayname"),
                              "matrix_id": user_id}
                token = page.get("next_token")
                token = str(token) if token is not None else None
        finally:
            http.close()
