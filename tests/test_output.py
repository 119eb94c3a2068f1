"""Small output rules: nouns agree with their counts, counts carry thousands separators, and an empty
listing says so on stderr while its JSON form keeps its list."""

from __future__ import annotations

import pytest
from send_helpers import create_campaign, import_users


@pytest.mark.parametrize(("args", "key"), [
    (["list"], "campaigns"), (["users", "list"], "users"), (["channels", "list"], "channels"),
    (["segment", "list"], "segments"), (["messages", "list"], "messages"), (["events", "list"], "events"),
])
def test_an_empty_listing_says_so_on_stderr_and_its_json_stays_a_list(cli, args, key):
    run = cli.ok(*args)
    as_json = cli.ok(*args, "--json")

    assert (run.stdout, run.stderr) == ("", f"no {key} match\n")
    assert (as_json.json()[key], as_json.stderr) == ([], "")


def test_an_empty_segment_says_no_targets_match(cli):
    cli.ok("segment", "create", "--type", "user", "--id", "m")

    run = cli.ok("segment", "targets", "m")

    assert (run.stdout, run.stderr) == ("", "no targets match\n")
    assert cli.ok("segment", "targets", "m", "--json").json()["targets"] == []


def test_counts_have_thousands_separators_and_nouns_agree(cli):
    users = [{"id": "acme", "name": "Acme"}] + [{"id": f"u{n:04d}", "name": f"U{n}"} for n in range(1_234)]
    imported = cli.ok("users", "import", str(cli.write_jsonl("users.jsonl", users)))
    one = cli.ok("users", "import", str(cli.write_jsonl("one.jsonl", users[:1])))
    cli.ok("segment", "create", "--type", "user", "--id", "m")
    ids = cli.write("ids.txt", "".join(f"u{n:04d}\n" for n in range(1_234)))
    added = cli.ok("segment", "add-targets", "m", "--file", str(ids))
    removed = cli.ok("segment", "remove-targets", "m", "u0000")
    create_campaign(cli, "c1", segment_ids=["m"], create_channels=True, channel_template={"type": "messaging"})
    cli.ok("start", "c1")

    status = cli.ok("status", "c1").stdout

    assert imported.stderr == "imported 1,235 users: 1,235 inserted, 0 updated\n"
    assert one.stderr == "imported 1 user: 0 inserted, 1 updated\n"
    assert added.stderr == "added 1,234 targets to segment m (size 1,234)\n"
    assert removed.stderr == "removed 1 target from segment m (size 1,233)\n"
    assert "targets 1,233 · sent 1,233 · skipped 0 · failed 0 · read 0" in status
    assert "created 1,233 · users sent 1,233" in status
    table = cli.ok("segment", "list").stdout
    assert "1,233" in table


def test_a_short_user_id_list_is_counted_in_the_campaign_listing(cli):
    import_users(cli)
    create_campaign(cli, "c1", user_ids=["alice"])

    assert "1 user id " in cli.ok("list").stdout


def test_data_in_tables_is_printed_as_written_not_as_rich_markup_or_emoji_codes(cli):
    import_users(cli, [{"id": "acme", "name": "[/]"}, {"id": "bob", "name": "[b]:+1:"}])
    create_campaign(cli, "c1", name="[/]:+1:", user_ids=["bob"])

    users = cli.ok("users", "list")
    campaigns = cli.ok("list")
    status = cli.ok("status", "c1")

    assert "│ [/] " in users.stdout and "│ [b]:+1: " in users.stdout
    assert "[/]:+1:" in campaigns.stdout
    assert "[/]:+1:" in status.stdout
