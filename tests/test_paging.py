"""Every paged listing pages forward with `next` and back with `prev`, and refuses foreign cursors."""

from __future__ import annotations

import pytest

from send_helpers import bulk_users, create_campaign, import_users, segment

LISTINGS = {
    "users": (["users", "list"], "users", "id"),
    "channels": (["channels", "list"], "channels", "cid"),
    "segments": (["segment", "list"], "segments", "id"),
    "targets": (["segment", "targets", "everyone"], "targets", "target_id"),
    "campaigns": (["list"], "campaigns", "id"),
    "campaigns by name": (["list", "--sort", "name"], "campaigns", "id"),
    "messages": (["messages", "list"], "messages", "id"),
    "events": (["events", "list"], "events", "type"),
}


@pytest.fixture
def world(cli):
    """Seven users, five segments, five campaigns; one campaign sent (messages, channels, events)."""
    import_users(cli, bulk_users(6))
    segment(cli, "everyone", all_users=True)
    for number in range(4):
        segment(cli, f"s{number}", targets=[f"u{number:05}"])
    for number in range(4):
        create_campaign(cli, f"c{number}", name=f"Campaign {4 - number}", segment_ids=[f"s{number}"])
    create_campaign(cli, "sent", segment_ids=["everyone"], create_channels=True, channel_template={"type": "messaging"})
    cli.ok("start", "sent")
    return cli


def page(cli, command: list[str], *cursor: str, limit: int = 2) -> dict:
    return cli.ok(*command, "--limit", str(limit), "--json", *cursor).json()


def test_prev_walks_back_over_the_pages_next_walked(world):
    for name in sorted(LISTINGS):
        walk_both_ways(world, name)


def walk_both_ways(world, name: str) -> None:
    command, key, field = LISTINGS[name]
    everything = [item[field] for item in page(world, command, limit=100)[key]]
    forward = [page(world, command)]
    while "next" in forward[-1]:
        forward.append(page(world, command, "--next", forward[-1]["next"]))
    backward = [forward[-1]]
    while "prev" in backward[-1]:
        backward.append(page(world, command, "--prev", backward[-1]["prev"]))

    assert len(everything) >= 5 and len(forward) >= 3, name
    assert [item[field] for p in forward for item in p[key]] == everything, name
    assert [[item[field] for item in p[key]] for p in reversed(backward)] == [[item[field] for item in p[key]]
                                                                              for p in forward], name
    assert "prev" not in forward[0] and "next" not in forward[-1], name
    assert all("next" in p for p in backward[1:]), name


def test_a_prev_cursor_from_another_listing_or_given_as_next_exits_3(world):
    users_prev = page(world, ["users", "list"], "--next", page(world, ["users", "list"])["next"])["prev"]
    run = world("channels", "list", "--prev", users_prev)
    assert (run.exit_code, run.error_line()) == (3, "error: --prev: this cursor belongs to another listing or sort order")
    run = world("users", "list", "--next", users_prev)
    assert (run.exit_code, run.error_line()) == (3, "error: --next: this is a --prev cursor")
    run = world("users", "list", "--prev", "garbage")
    assert (run.exit_code, run.error_line()) == (3, "error: --prev: not a cursor produced by campaign")
    run = world("users", "list", "--prev", users_prev, "--next", users_prev)
    assert (run.exit_code, run.error_line()) == (3, "error: --next, --prev: give one of them, not both")


def test_get_pages_the_campaign_users(world):
    first = world.ok("get", "sent", "--users-limit", "3", "--json").json()
    second = world.ok("get", "sent", "--users-limit", "3", "--users-next", first["users"]["next"], "--json").json()
    third = world.ok("get", "sent", "--users-limit", "3", "--users-next", second["users"]["next"], "--json").json()
    back = world.ok("get", "sent", "--users-limit", "3", "--users-prev", second["users"]["prev"], "--json").json()

    def ids(document: dict) -> list[str]:
        return [u["id"] for u in document["campaign"]["users"]]

    assert (ids(first), ids(second), ids(third)) == (["acme", "u00000", "u00001"], ["u00002", "u00003", "u00004"],
                                                     ["u00005"])
    assert (sorted(first["users"]), sorted(third["users"])) == (["next"], ["prev"])
    assert back == first
    assert ids(world.ok("get", "c1", "--json").json()) == ["u00001"]


@pytest.mark.parametrize(("args", "message"), [
    (["--users-limit", "0"], "--users-limit: must be between 1 and 1000, got 0"),
    (["--users-limit", "1001"], "--users-limit: must be between 1 and 1000, got 1001"),
    (["--users-next", "garbage"], "--users-next: not a cursor produced by campaign"),
])
def test_bad_users_paging_exits_3(world, args, message):
    run = world("get", "sent", *args)
    assert (run.exit_code, run.error_line()) == (3, f"error: {message}")


def test_a_users_cursor_of_another_campaign_exits_3(world):
    cursor = world.ok("get", "sent", "--users-limit", "1", "--json").json()["users"]["next"]
    run = world("get", "c1", "--users-next", cursor)
    assert (run.exit_code, run.error_line()) == (
        3, "error: --users-next: this cursor belongs to another listing or sort order")
