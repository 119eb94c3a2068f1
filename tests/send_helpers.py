"""Helpers for the sender tests: seed users, channels, segments and campaigns through the real CLI,
read back messages, events and channels, and run the CLI as a subprocess that can be killed.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import yaml

from campaign_cli.sending import loop
from campaign_cli.store.engine import open_engine
from campaign_cli.users import delete_users

SENDER = {"id": "acme", "name": "Acme Team", "role": "admin"}
USERS = [
    SENDER,
    {"id": "alice", "name": "Alice", "country": "FR", "devices": [{"id": "alice-phone", "push_provider": "apn"}]},
    {"id": "bob", "name": "Bob", "country": "GB"},
    {"id": "carol", "name": "Carol", "country": "FR",
     "devices": [{"id": "carol-phone", "push_provider": "firebase"}, {"id": "carol-tab", "push_provider": "apn"}]},
    {"id": "dave", "name": "Dave", "country": "DE"},
]


def import_users(cli, users: list[dict] = USERS) -> None:
    """Upsert users with `campaign users import`."""
    cli.ok("users", "import", str(cli.write_jsonl("users.jsonl", users)))


def import_channels(cli, channels: list[dict]) -> None:
    """Upsert channels (with members, hidden flags, read markers) with `campaign channels import`."""
    cli.ok("channels", "import", str(cli.write_jsonl("channels.jsonl", channels)))


def write_yaml(cli, name: str, data: Any) -> Path:
    return cli.write(name, yaml.safe_dump(data, sort_keys=False, allow_unicode=True))


def segment(cli, segment_id: str, type_: str = "user", **fields: Any) -> dict:
    """Create a segment from a YAML definition (`filter`, `all_users`, `targets`, …)."""
    path = write_yaml(cli, f"segment-{segment_id}.yaml", {"id": segment_id, "type": type_, **fields})
    return cli.ok("segment", "create", "-f", str(path), "--json").json()["segment"]


def create_campaign(cli, campaign_id: str, **fields: Any) -> dict:
    """Create a draft campaign from acme with a `Hi {{ receiver.name }}` text unless told otherwise."""
    spec = {"id": campaign_id, "sender_id": "acme", "message_template": {"text": "Hi {{ receiver.name }}"}, **fields}
    path = write_yaml(cli, f"campaign-{campaign_id}.yaml", spec)
    return cli.ok("create", "-f", str(path), "--json").json()["campaign"]


def get(cli, campaign_id: str) -> dict:
    """The campaign object `get --json` prints under `campaign`."""
    return cli.ok("get", campaign_id, "--json").json()["campaign"]


def stats(cli, campaign_id: str) -> dict:
    return get(cli, campaign_id)["stats"]


def _pages(cli, key: str, *args: str) -> list[dict]:
    items: list[dict] = []
    cursor: list[str] = []
    while True:
        page = cli.ok(*args, "--limit", "1000", "--json", *cursor).json()
        items.extend(page[key])
        if "next" not in page:
            return items
        cursor = ["--next", page["next"]]


def messages(cli, campaign_id: str | None = None) -> list[dict]:
    """Every message (of one campaign), oldest first, read page by page with `messages list`."""
    return _pages(cli, "messages", "messages", "list", *(["--campaign", campaign_id] if campaign_id else []))


def events(cli, campaign_id: str, type_: str | None = None) -> list[dict]:
    """Every event of a campaign, in order, with `events list`."""
    return _pages(cli, "events", "events", "list", "--campaign", campaign_id, *(["--type", type_] if type_ else []))


def channel(cli, cid: str) -> dict:
    """The channel object `channels get --json` prints under `channel`."""
    return cli.ok("channels", "get", cid, "--json").json()["channel"]


def channels(cli) -> list[dict]:
    return _pages(cli, "channels", "channels", "list")


def members(cli, cid: str) -> dict[str, dict]:
    """A channel's members by user id: {channel_role, hidden, archived, …}."""
    return {m["user_id"]: m for m in cli.ok("channels", "get", cid, "--json").json()["members"]}


def config(cli, name: str = "config.yaml", **sections: Any) -> Path:
    """A config file (webhook, push, sending, quota sections)."""
    return write_yaml(cli, name, sections)


def sql(cli, statement: str, *params: Any) -> list[tuple]:
    """Read the database directly: for what no command prints (push records) and for fast polling."""
    return cli.sql(statement, *params)


def spawn(cli, *args: str, config_path: Path | None = None) -> subprocess.Popen:
    """`python -m campaign_cli --db DB ARGS…` as a subprocess (stdout/stderr captured)."""
    env = {k: v for k, v in os.environ.items() if k not in ("CAMPAIGN_DB", "CAMPAIGN_CONFIG")}
    if config_path is not None:
        env["CAMPAIGN_CONFIG"] = str(config_path)
    return subprocess.Popen([sys.executable, "-m", "campaign_cli", "--db", str(cli.db), *args], env=env,
                            cwd=cli.cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_until(condition: Callable[[], Any], timeout: float = 15.0, every: float = 0.02) -> Any:
    """Poll `condition` until it returns something true; fail the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"condition not met within {timeout} s")


def done(cli, campaign_id: str) -> int:
    """How many targets the campaign has done, read straight from the database (cheap enough to poll):
    the campaign row's count plus the claims its senders wrote and that are not yet added to it."""
    rows = sql(cli, "SELECT stats_done + (SELECT coalesce(sum(hi - lo + 1), 0) FROM campaign_claims"
                    " WHERE campaign_pk = campaigns.pk AND done_at IS NOT NULL AND NOT folded)"
                    " FROM campaigns WHERE id = ?", campaign_id)
    return rows[0][0] if rows else 0


def finish(process: subprocess.Popen, timeout: float = 20.0) -> tuple[int, str, str]:
    """Wait for a subprocess; returns (exit code, stdout, stderr)."""
    out, err = process.communicate(timeout=timeout)
    return process.returncode, out, err


def stop_process(process: subprocess.Popen) -> None:
    """Make sure a subprocess a test started is gone (kill it if it still runs)."""
    if process.poll() is None:
        process.kill()
    process.communicate(timeout=10)


def bulk_users(count: int, prefix: str = "u") -> list[dict]:
    return [SENDER] + [{"id": f"{prefix}{i:05}", "name": f"User {i}"} for i in range(count)]


def rfc3339_in(seconds: float) -> str:
    """An RFC 3339 UTC time `seconds` from now."""
    return (datetime.now(timezone.utc) + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")


def delete_after_planning(cli, monkeypatch, user_id: str, and_then: Callable[[], Any] | None = None) -> None:
    """Another operator deletes `user_id` (and does `and_then`) after the sender planned its batch,
    before it writes it."""
    planned = loop.plan_batch

    def plan_then_delete(conn, run, targets):
        deliveries = planned(conn, run, targets)
        engine = open_engine(cli.url)
        try:
            delete_users(engine, [user_id])
        finally:
            engine.dispose()
        if and_then is not None:
            and_then()
        return deliveries

    monkeypatch.setattr(loop, "plan_batch", plan_then_delete)
