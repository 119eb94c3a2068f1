"""Most commands never create a database, and unknown ids in listing filters are exit 4."""

from __future__ import annotations

import pytest
from send_helpers import create_campaign, import_users

READERS = [
    ["list"], ["get", "c1"], ["status", "c1"], ["preview", "c1"], ["stop", "c1"], ["resume", "c1"], ["start", "c1"],
    ["delete", "c1"], ["messages", "list"], ["events", "list"], ["users", "list"], ["users", "get", "alice"],
    ["users", "delete", "alice"], ["channels", "list"], ["channels", "get", "messaging:x"], ["segment", "list"],
    ["segment", "get", "s"], ["segment", "targets", "s"], ["segment", "target-exists", "s", "alice"],
    ["segment", "refresh", "s"], ["segment", "delete", "s"], ["segment", "add-targets", "s", "alice"],
]


@pytest.mark.parametrize("args", READERS, ids=[" ".join(a) for a in READERS])
def test_a_command_pointed_at_a_missing_database_exits_4_and_creates_nothing(cli, tmp_path, args):
    folder = tmp_path / "empty"
    folder.mkdir()
    missing = folder / "campaing.db"

    run = cli("--db", str(missing), *args)

    assert (run.exit_code, run.stdout, run.stderr) == (4, "", f"error: no database at {missing}\n")
    assert list(folder.iterdir()) == []


def test_an_empty_file_is_no_database_either_and_stays_empty(cli, tmp_path):
    empty = tmp_path / "empty.db"
    empty.write_bytes(b"")

    run = cli("--db", str(empty), "list")

    assert (run.exit_code, run.stderr) == (4, f"error: no database at {empty}\n")
    assert empty.read_bytes() == b""
    assert not (tmp_path / "empty.db-wal").exists()


@pytest.mark.parametrize("args", [["users", "import", "users.jsonl"], ["channels", "import", "channels.jsonl"],
                                  ["segment", "create", "--type", "user", "--id", "s", "--all-users"], ["run"]])
def test_commands_that_bring_data_create_the_database(cli, tmp_path, args):
    cli.write_jsonl("users.jsonl", [{"id": "u1"}])
    cli.write_jsonl("channels.jsonl", [{"type": "t", "id": "c"}])
    fresh = tmp_path / "fresh.db"
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(tmp_path)
        cli.ok("--db", str(fresh), *args)
    assert cli.ok("--db", str(fresh), "users", "list", "--count").stdout in ("0\n", "1\n")


@pytest.mark.parametrize("args", [["messages", "list", "--campaign", "NOPE"], ["events", "list", "--campaign", "NOPE"],
                                  ["segment", "targets", "NOPE"]])
def test_an_unknown_id_in_a_listing_filter_is_exit_4(cli, args):
    import_users(cli)
    kind = "segment" if args[0] == "segment" else "campaign"

    run = cli(*args, "--json")

    assert (run.exit_code, run.stdout, run.stderr) == (4, "", f"error: {kind} 'NOPE' not found\n")


def test_a_campaign_without_messages_yet_lists_empty(cli):
    import_users(cli)
    create_campaign(cli, "c1", user_ids=["alice"])

    assert cli.ok("messages", "list", "--campaign", "c1", "--json").json()["messages"] == []
    assert cli.ok("events", "list", "--campaign", "c1", "--json").json()["events"] == []
