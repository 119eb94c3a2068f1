"""`campaign list`: filters, sort and keyset paging over campaigns."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
import yaml

from campaign_cli.store.engine import open_engine, writing
from campaign_cli.store.models import SEGMENTS, USERS

# id, name, segment_ids, status, created_at (minutes past 10:00)
CAMPAIGNS = [
    ("c1", "Beta news", ["beta"], "draft", 5),
    ("c2", "Ops notice", ["ops"], "completed", 1),
    ("c3", "Beta and VIP", ["beta", "vip"], "in_progress", 3),
    ("c4", "VIP only", ["vip"], "draft", 3),
    ("c5", "All hands", ["ops", "beta"], "stopped", 2),
]


@pytest.fixture
def listed(cli):
    """Five campaigns with distinct names, segments, statuses and creation times (two share one)."""
    stamp = datetime.now(timezone.utc)
    engine = open_engine(cli.url)
    with writing(engine) as conn:
        conn.execute(USERS.insert(), [{"id": "acme", "teams": [], "devices": [], "custom": {},
                                                "created_at": stamp, "updated_at": stamp}])
        conn.execute(SEGMENTS.insert(), [
            {"id": segment_id, "type": kind, "created_at": stamp, "updated_at": stamp}
            for segment_id, kind in (("beta", "user"), ("vip", "user"), ("ops", "channel"))])
    engine.dispose()
    definitions = [{"id": cid, "name": name, "segment_ids": segments, "sender_id": "acme",
                    "message_template": {"text": "Hi {{ sender.name }}"}} for cid, name, segments, _, _ in CAMPAIGNS]
    cli.ok("create", "-f", str(cli.write("all.yaml", yaml.safe_dump({"campaigns": definitions}))))
    for cid, _, _, status, minute in CAMPAIGNS:
        cli.sql("UPDATE campaigns SET status = ?, created_at = ? WHERE id = ?",
                status, f"2030-01-01 10:{minute:02}:00.000000", cid)
    return cli


def ids(cli, *args: str) -> list[str]:
    return [c["id"] for c in cli.ok("list", "--json", *args).json()["campaigns"]]


def test_default_order_is_newest_first_with_ties_in_creation_order(listed):
    assert ids(listed) == ["c1", "c3", "c4", "c5", "c2"]


@pytest.mark.parametrize(("filter_", "expected"), [
    ('{"status": "draft"}', ["c1", "c4"]),
    ('{"status": {"$in": ["stopped", "completed"]}}', ["c5", "c2"]),
    ('{"segments": {"$contains": "beta"}}', ["c1", "c3", "c5"]),
    ('{"segments": {"$in": ["vip", "ops"]}}', ["c3", "c4", "c5", "c2"]),
    ('{"name": {"$autocomplete": "Beta"}}', ["c1", "c3"]),
    ('{"id": {"$nin": ["c1", "c2"]}, "sender_id": "acme"}', ["c3", "c4", "c5"]),
    ('{"created_at": {"$gte": "2030-01-01T10:03:00Z"}}', ["c1", "c3", "c4"]),
    ('{"updated_at": {"$lt": "2000-01-01T00:00:00Z"}}', []),
    ('{"$or": [{"status": "draft"}, {"segments": {"$contains": "ops"}}]}', ["c1", "c4", "c5", "c2"]),
])
def test_filters(listed, filter_, expected):
    assert ids(listed, "--filter", filter_) == expected


@pytest.mark.parametrize(("sort", "expected"), [
    (["name"], ["c5", "c3", "c1", "c2", "c4"]),
    (["-name"], ["c4", "c2", "c1", "c3", "c5"]),
    (["created_at", "-id"], ["c2", "c5", "c4", "c3", "c1"]),
    (["status", "name"], ["c2", "c1", "c4", "c3", "c5"]),
])
def test_sort(listed, sort, expected):
    assert ids(listed, *[a for s in sort for a in ("--sort", s)]) == expected


@pytest.mark.parametrize("sort", [[], ["name"], ["-created_at", "-id"], ["status", "-name"]])
def test_paging_walks_every_campaign_once_in_order(listed, sort):
    sort_args = [a for s in sort for a in ("--sort", s)]
    everything = ids(listed, *sort_args)
    seen, cursor = [], None
    for _ in range(5):
        page = listed.ok("list", "--json", "--limit", "2", *sort_args, *(["--next", cursor] if cursor else [])).json()
        seen += [c["id"] for c in page["campaigns"]]
        cursor = page.get("next")
        if cursor is None:
            break
    assert seen == everything
    assert len(everything) == 5


def test_a_bare_value_means_eq_and_on_segments_a_campaign_that_has_it(listed):
    assert ids(listed, "--filter", '{"segments": "beta"}') == ["c1", "c3", "c5"]
    assert ids(listed, "--filter", '{"segments": {"$eq": "ops"}}') == ["c5", "c2"]
    assert ids(listed, "--filter", '{"status": "draft", "name": "VIP only"}') == ["c4"]
    assert [s["id"] for s in listed.ok("segment", "list", "--json", "--filter", '{"type": "user"}').json()["segments"]] == [
        "beta", "vip"]


def test_paging_with_a_filter(listed):
    first = listed.ok("list", "--json", "--limit", "1", "--filter", '{"status": "draft"}').json()
    assert [c["id"] for c in first["campaigns"]] == ["c1"]
    second = listed.ok("list", "--json", "--limit", "1", "--filter", '{"status": "draft"}', "--next", first["next"]).json()
    assert ([c["id"] for c in second["campaigns"]], "next" in second) == (["c4"], False)


def test_the_table_prints_the_next_cursor_on_stderr(listed):
    run = listed.ok("list", "--limit", "2")
    assert "c1" in run.stdout and "c3" in run.stdout and "c4" not in run.stdout
    assert run.stderr.startswith("next: ")
    assert ids(listed, "--limit", "2", "--next", run.stderr.strip().removeprefix("next: ")) == ["c4", "c5"]


@pytest.mark.parametrize(("args", "message"), [
    (["--limit", "101"], "--limit: must be between 1 and 100, got 101"),
    (["--limit", "0"], "--limit: must be between 1 and 100, got 0"),
    (["--sort", "sender_mode"], "--sort: cannot sort by 'sender_mode' (use id, name, sender_id, status, created_at, "
                                "updated_at, with - for descending)"),
    (["--filter", '{"country": "NL"}'], "--filter: field 'country' does not exist for campaigns"),
    (["--filter", '{"segments": {"$gt": "beta"}}'], "--filter: field 'segments': operator $gt is not allowed on a list field"),
    (["--filter", '{"created_at": {"$gt": "2030-01-01 10:00"}}'],
     "--filter: field 'created_at': time '2030-01-01 10:00' has no offset (add Z or +HH:MM)"),
    (["--filter", "[1]"], "--filter: a filter must be a JSON object"),
    (["--next", "garbage"], "--next: not a cursor produced by campaign"),
])
def test_bad_list_arguments(listed, args, message):
    run = listed("list", *args)
    assert (run.exit_code, run.stderr) == (3, f"error: {message}\n")


def test_a_cursor_only_works_for_its_own_sort(listed):
    cursor = listed.ok("list", "--json", "--limit", "2", "--sort", "name").json()["next"]
    run = listed("list", "--next", cursor)
    assert (run.exit_code, run.stderr) == (3, "error: --next: this cursor belongs to another listing or sort order\n")


def test_list_items_are_full_campaign_objects_without_their_users(listed):
    listed.ok("segment", "add-targets", "beta", "acme")
    item = listed.ok("list", "--json", "--filter", '{"id": "c3"}').json()["campaigns"][0]
    campaign = listed.ok("get", "c3").json()["campaign"]
    assert [u["id"] for u in campaign["users"]] == ["acme"]
    assert item == {**campaign, "users": []}
